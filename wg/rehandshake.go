package wg

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

// follow resolves peer i's endpoint name again and, if it moved, records
// the new address (after the kill switch follows it, for the first peer).
// It returns the endpoint to use and whether it changed.
func (d *Device) follow(ctx context.Context, i int, p tunnel.Peer) (netip.AddrPort, bool) {
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
	d.mu.Lock()
	peers := d.cfg.Peers
	d.mu.Unlock()
	for i, p := range peers {
		ap, _ := d.follow(ctx, i, p)
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", p.PublicKey.Hex())
		writePeer(&b, p, ap)
	}
	if err := d.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("restarting the WireGuard handshake: %w", err)
	}
	return nil
}

// Reconfigure moves the device to a new tunnel: a new private key and new
// peers (a provider registered a fresh key, maybe with another server).
// The endpoints are resolved, the kill switch hears the first before it is
// used, and the old peers are dropped.
func (d *Device) Reconfigure(ctx context.Context, cfg tunnel.WireGuard) error {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nreplace_peers=true\n", cfg.PrivateKey.Hex())
	remote := map[tunnel.Key]netip.AddrPort{}
	for i, p := range cfg.Peers {
		var ap netip.AddrPort
		if p.Endpoint != "" {
			var err error
			if ap, err = d.resolve(ctx, p.Endpoint); err != nil {
				return err
			}
			if i == 0 && d.onEndpoint != nil {
				if err := d.onEndpoint(ap); err != nil {
					return err
				}
			}
			remote[p.PublicKey] = ap
		}
		writePeer(&b, p, ap)
	}
	if err := d.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("reconfiguring the WireGuard device: %w", err)
	}
	d.mu.Lock()
	d.cfg, d.remote = cfg, remote
	d.mu.Unlock()
	return nil
}
