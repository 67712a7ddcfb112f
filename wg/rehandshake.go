package wg

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vpnfwd/vpnfwd/config"
)

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
