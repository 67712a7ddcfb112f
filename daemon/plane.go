package daemon

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/netns"
	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/tundev"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// dataPlane is WireGuard's TUN side and the way vpnfwd itself reaches
// through the tunnel (provider, DNS forwarder, liveness checks, proxies):
// a gVisor stack inside vpnfwd (netstack.Stack, the default) or a kernel
// TUN (tundev.Device, --tun). The session does not know which it drives.
type dataPlane interface {
	TUN() tun.Device
	forward.Tunnel
	Addresses() []netip.Prefix
	SetAddresses([]netip.Prefix) error
}

// tunMark is the WireGuard socket's mark in tun mode: the routing rules
// keep marked packets out of the tunnel (the kill switch uses the same).
const tunMark = nft.WireGuardMark

// openTun is the kernel data plane: a TUN named in the config, with the
// tunnel's addresses and every peer's allowed IPs routed through it except
// the WireGuard socket's own packets. No bridge: a service in this
// namespace is reached on the forwarded port directly.
func (d *Daemon) openTun() error {
	w := d.cfg.WireGuard
	routes := allowedIPs(w.Peers)
	t, err := tundev.Open(tundev.Config{Name: w.Tun, MTU: w.MTU, Addresses: w.Addresses(), Routes: routes, Mark: tunMark, OwnMark: nft.OwnMark})
	if err != nil {
		return err
	}
	for _, warn := range t.Warnings {
		d.log.Warn(warn)
	}
	d.tun, d.plane = t, t
	d.log.Info("tun mode: everything in this network namespace goes through the tunnel", "device", w.Tun, "routes", fmt.Sprint(routes))
	if d.tunBridged() {
		// A service on loopback cannot be reached by a redirect (the
		// kernel does not route to 127.0.0.0/8 from another interface):
		// vpnfwd's bridge listens on the tunnel's address instead.
		d.bridge = d.newBridge(t)
		d.log.Info("tun mode with a loopback service: the bridge listens on the tunnel's address", "target", d.cfg.Forward.Target)
	}
	return nil
}

// tunBridged says whether tun mode bridges the forwarded port (--forward
// names a loopback address and a port) rather than redirecting it in the
// kernel (--forward with the tunnel's address or 0.0.0.0 and a port) or
// leaving it to the service (no port: the service listens on the
// forwarded port itself, on all addresses).
func (d *Daemon) tunBridged() bool {
	return d.targetPort != 0 && isLoopback(d.targetHost)
}

// checkTunTarget: in tun mode --forward's host must be loopback (bridged),
// the tunnel's address or all addresses (redirected in the kernel).
func (d *Daemon) checkTunTarget() error {
	h := d.targetHost
	if isLoopback(h) || h == "" || h == "0.0.0.0" || h == "::" {
		return nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		for _, p := range d.cfg.WireGuard.Addresses() {
			if p.Addr() == a.Unmap() {
				return nil
			}
		}
	}
	return fmt.Errorf("--forward %s: in tun mode the service must be in this network namespace: give 127.0.0.1:PORT for a service on loopback (vpnfwd bridges to it), 0.0.0.0:PORT or the tunnel's address for one on all addresses (redirected in the kernel), or no port for a service that listens on the forwarded port itself", d.cfg.Forward.Target)
}

// isLoopback: "localhost" or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// guardTable is tun mode's nftables table that keeps the provider's
// control endpoints to vpnfwd.
func (d *Daemon) guardTable() string { return "vpnfwd_guard_" + d.cfg.WireGuard.Tun }

// guardControl makes the provider's control endpoints (NAT-PMP's 5351,
// PIA's port API) reachable from vpnfwd's own sockets only, in the kernel
// data planes, where every program shares the tunnel: tun mode's
// namespace, exec's. (In netstack mode only the proxies reach the tunnel,
// and their guard refuses.) Called again when the endpoints move.
func (d *Daemon) guardControl(ctx context.Context) {
	if d.caps.Guarded == nil || (d.tun == nil && d.sandbox == nil) {
		return
	}
	var rs []nft.Reserved
	for _, e := range d.caps.ControlEndpoints() {
		rs = append(rs, nft.Reserved{Proto: e.Network, Addr: e.Addr})
	}
	var err error
	if d.sandbox != nil {
		err = d.sandbox.Guard(ctx, rs)
	} else {
		err = nft.Guard(d.guardTable(), nft.OwnMark, rs)
	}
	if err != nil {
		d.log.Error("keeping the provider's port-forwarding service to vpnfwd: other programs in the namespace can reach it", "err", err)
		return
	}
	d.log.Info("the provider's port-forwarding service is vpnfwd's alone (other programs are refused)", "endpoints", fmt.Sprint(rs))
}

// unguard removes tun mode's guard table (exec's goes with the namespace).
func (d *Daemon) unguard() {
	if d.tun == nil {
		return
	}
	if err := nft.Guard(d.guardTable(), nft.OwnMark, nil); err != nil {
		d.log.Error("removing the guard table", "table", d.guardTable(), "err", err)
	}
}

// redirectTable is tun mode's nftables table for --forward HOST:PORT.
func (d *Daemon) redirectTable() string { return "vpnfwd_fwd_" + d.cfg.WireGuard.Tun }

// tunPorts says which port the service must listen on in tun mode (and
// exec), and puts the redirects in: with --forward HOST:PORT the
// forwarded port goes to PORT; without one the service listens on the
// public port (the one published to it), and where the gateway delivers
// to another local port, that is redirected; a port an app mapped by
// NAT-PMP or PCP goes to the app's own port. Called by the session's
// subscriber (a new lease) and by the responder (mappings changed).
func (d *Daemon) tunPorts() {
	l := d.tunLease.Load()
	if l == nil {
		return
	}
	d.redirMu.Lock()
	defer d.redirMu.Unlock()
	apps := map[uint16][]portmap.Mapping{}
	if d.pmp != nil {
		for _, m := range d.pmp.Mappings() {
			apps[m.Local] = append(apps[m.Local], m)
		}
	}
	var rs []nft.PortRedirect
	for _, p := range l.Ports {
		if ms := apps[p.Local]; len(ms) > 0 {
			for _, m := range ms {
				if m.Internal != p.Local {
					rs = append(rs, nft.PortRedirect{Proto: m.Proto, From: p.Local, To: m.Internal})
				}
			}
			continue
		}
		to := d.targetPort
		if to == 0 {
			to = p.Public
		}
		if to == p.Local {
			continue
		}
		for _, proto := range d.cfg.Forward.Protocols {
			if p.Protocol == "" || p.Protocol == proto {
				rs = append(rs, nft.PortRedirect{Proto: proto, From: p.Local, To: to})
			}
		}
	}
	// Say what each port does when that changes (not at every renewal).
	var said []string
	for _, p := range l.Ports {
		to := cmp.Or(d.targetPort, p.Public)
		switch ms := apps[p.Local]; {
		case len(ms) > 0:
			said = append(said, fmt.Sprintf("app %d %d %s", p.Local, ms[0].Internal, ms[0].Via))
		case to == p.Local:
			said = append(said, fmt.Sprintf("itself %d", p.Local))
		default:
			said = append(said, fmt.Sprintf("redirect %d %d", p.Local, to))
		}
	}
	if key := strings.Join(said, ","); key != d.redirSaid {
		d.redirSaid = key
		for _, p := range l.Ports {
			to := cmp.Or(d.targetPort, p.Public)
			switch ms := apps[p.Local]; {
			case len(ms) > 0:
				d.log.Info("the forwarded port goes to the app that asked for it", "port", p.Local, "app_port", ms[0].Internal, "via", ms[0].Via)
			case to == p.Local:
				d.log.Info("the service is reached on the forwarded port itself (no bridge)", "port", p.Local, "protocols", d.cfg.Forward.Protocols)
			default:
				d.log.Info("the forwarded port is redirected (the service must listen on all addresses or the tunnel's, not on loopback only)", "port", p.Local, "to", to)
			}
		}
	}
	if slices.Equal(rs, d.redirects) && (len(rs) > 0) == d.redirected {
		return
	}
	if len(rs) == 0 && !d.redirected {
		d.redirects = nil
		return
	}
	if err := d.redirect(rs); err != nil {
		d.log.Error("redirecting the forwarded port", "err", err)
		return
	}
	d.redirects = rs
	d.redirected = len(rs) > 0
}

// unredirect removes tun mode's redirect table, if any.
func (d *Daemon) unredirect() {
	d.redirMu.Lock()
	defer d.redirMu.Unlock()
	if !d.redirected {
		return
	}
	if d.sandbox != nil {
		return // the redirect goes with CMD's namespace
	}
	if err := d.redirect(nil); err != nil {
		d.log.Error("removing the port redirect", "err", err)
	}
	d.redirected = false
}

// allowedIPs are every peer's allowed IPs: what the TUN routes.
func allowedIPs(peers []tunnel.Peer) []netip.Prefix {
	var routes []netip.Prefix
	for _, p := range peers {
		for _, a := range p.AllowedIPs {
			routes = append(routes, netip.Prefix(a))
		}
	}
	return routes
}

// redirect puts the redirects in: in vpnfwd's namespace in tun mode, in
// CMD's in exec mode.
func (d *Daemon) redirect(rs []nft.PortRedirect) error {
	if d.sandbox == nil {
		return nft.Redirect(d.redirectTable(), d.cfg.WireGuard.Tun, rs)
	}
	var nrs []netns.Redirect
	for _, r := range rs {
		nrs = append(nrs, netns.Redirect{Proto: r.Proto, From: r.From, To: r.To})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.sandbox.Redirect(ctx, nrs)
}
