package wg

import (
	"context"
	"fmt"
	"time"
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
		host, _ := p.Endpoint.HostPort()
		if host == "" {
			continue
		}
		ap, err := d.resolve(ctx, p.Endpoint)
		if err != nil {
			d.log.Warn("re-resolving endpoint", "endpoint", string(p.Endpoint), "err", err)
			continue
		}
		d.mu.Lock()
		old := d.remote[p.PublicKey]
		d.remote[p.PublicKey] = ap
		d.mu.Unlock()
		if ap == old {
			continue
		}
		d.log.Info("endpoint moved", "endpoint", string(p.Endpoint), "from", old.String(), "to", ap.String())
		if i == 0 && d.onEndpoint != nil {
			if err := d.onEndpoint(ap); err != nil {
				d.log.Error("endpoint moved but the kill switch could not follow; staying on the old one", "err", err)
				d.mu.Lock()
				d.remote[p.PublicKey] = old
				d.mu.Unlock()
				continue
			}
		}
		uapi := fmt.Sprintf("public_key=%s\nupdate_only=true\nendpoint=%s\n", p.PublicKey.Hex(), ap)
		if err := d.dev.IpcSet(uapi); err != nil {
			d.log.Warn("updating endpoint", "err", err)
		}
	}
}
