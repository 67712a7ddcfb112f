package wg

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
)

// State is the tunnel's health as seen from the counters.
type State string

const (
	StateConnecting State = "connecting" // no handshake yet
	StateUp         State = "up"
	StateDown       State = "down" // traffic sent, nothing received for StallAfter
)

// WatchOptions tune Watch; zero values pick the defaults.
type WatchOptions struct {
	Interval     time.Duration // how often counters are read (5 s)
	StallAfter   time.Duration // sent-but-nothing-received time that means down (3 min)
	ResolveEvery time.Duration // how often a down tunnel re-resolves its endpoint (30 s)
}

func (o *WatchOptions) defaults() {
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.StallAfter == 0 {
		o.StallAfter = 3 * time.Minute
	}
	if o.ResolveEvery == 0 {
		o.ResolveEvery = 30 * time.Second
	}
}

// Watch reads the counters until ctx ends and calls onState whenever the
// state changes. A tunnel is down when packets were sent but nothing (not
// even WireGuard's passive keepalive, which a healthy server sends within
// 10 s) came back for StallAfter. While down, the endpoint's host name is
// re-resolved and the device pointed at the new address if it moved;
// wireguard-go keeps retrying handshakes, so the tunnel recovers by itself.
func (d *Device) Watch(ctx context.Context, o WatchOptions, onState func(State, Stats)) {
	o.defaults()
	var (
		state       = StateConnecting
		last        Stats
		lastRx      = time.Now()
		txSinceRx   bool
		lastResolve time.Time
	)
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := d.Stats()
		if err != nil {
			continue
		}
		now := time.Now()
		if st.RxBytes > last.RxBytes {
			lastRx, txSinceRx = now, false
		} else if st.TxBytes > last.TxBytes {
			txSinceRx = true
		}
		last = st
		next := state
		switch {
		case txSinceRx && now.Sub(lastRx) > o.StallAfter:
			next = StateDown
		case !st.LastHandshake.IsZero() && !txSinceRx:
			next = StateUp
		}
		if next != state {
			state = next
			onState(state, st)
		}
		if state != StateUp && now.Sub(lastResolve) >= o.ResolveEvery {
			lastResolve = now
			d.reresolve(ctx)
		}
	}
}

// reresolve looks the peers' endpoint names up again and moves the device to
// any new address.
func (d *Device) reresolve(ctx context.Context) {
	for i, p := range d.cfg.Peers {
		ap, moved := d.follow(ctx, i, p)
		if !moved {
			continue
		}
		uapi := fmt.Sprintf("public_key=%s\nupdate_only=true\nendpoint=%s\n", p.PublicKey.Hex(), ap)
		if err := d.dev.IpcSet(uapi); err != nil {
			d.log.Warn("updating endpoint", "err", err)
		}
	}
}

// follow resolves peer i's endpoint name again and, if it moved, records
// the new address (after the kill switch follows it, for the first peer).
// It returns the endpoint to use and whether it changed.
func (d *Device) follow(ctx context.Context, i int, p config.Peer) (netip.AddrPort, bool) {
	d.mu.Lock()
	old := d.remote[p.PublicKey]
	d.mu.Unlock()
	host, _ := p.Endpoint.HostPort()
	if host == "" {
		return old, false
	}
	ap, err := d.resolve(ctx, p.Endpoint)
	if err != nil {
		d.log.Warn("re-resolving endpoint", "endpoint", string(p.Endpoint), "err", err)
		return old, false
	}
	if ap == old {
		return old, false
	}
	d.log.Info("endpoint moved", "endpoint", string(p.Endpoint), "from", old.String(), "to", ap.String())
	if i == 0 && d.onEndpoint != nil {
		if err := d.onEndpoint(ap); err != nil {
			d.log.Error("endpoint moved but the kill switch could not follow; staying on the old one", "err", err)
			return old, false
		}
	}
	d.mu.Lock()
	d.remote[p.PublicKey] = ap
	d.mu.Unlock()
	return ap, true
}

// Rehandshake makes the tunnel start over: the endpoints are resolved
// again, and each peer is removed and added back, which drops its session
// keys so that the next packet sent starts a fresh handshake at once
// (instead of wireguard-go's own retry, 15 s after traffic stops being
// answered). A server that restarted lost our session and our endpoint;
// this is how it gets both back. Counters start again from zero.
func (d *Device) Rehandshake(ctx context.Context) error {
	var b strings.Builder
	for i, p := range d.cfg.Peers {
		ap, _ := d.follow(ctx, i, p)
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", p.PublicKey.Hex())
		writePeer(&b, p, ap)
	}
	if err := d.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("restarting the WireGuard handshake: %w", err)
	}
	return nil
}
