package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/status"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// plane is the data plane: WireGuard's TUN side, the way vpnfwd itself
// reaches through the tunnel (provider, DNS forwarder, liveness checks,
// proxies), and where the forwarded ports go. Three types implement it:
// netstackPlane (a gVisor stack inside vpnfwd, the default), tunPlane (a
// kernel TUN in this namespace, --tun) and execPlane (a TUN in exec's
// namespace). The daemon holds one and never asks which; the session
// does not know which it drives.
type plane interface {
	TUN() tun.Device
	forward.Tunnel
	Addresses() []netip.Prefix
	SetAddresses([]netip.Prefix) error
	// ApplyPorts takes the lease's ports to the service (the bridge's
	// routes, or the kernel's redirects) and offers the rest to the apps
	// that ask; a lease with no ports was lost. It runs on the
	// session's apply stage, one lease at a time.
	ApplyPorts(l provider.Lease)
	// Guard keeps the provider's control endpoints to vpnfwd's own
	// sockets where other programs share the tunnel (tun mode, exec);
	// called again when the endpoints move.
	Guard(ctx context.Context)
	// Serve answers the apps that ask for a port (NAT-PMP, PCP, UPnP
	// IGD) until ctx ends; goFunc owns the goroutines.
	Serve(ctx context.Context, goFunc func(func()))
	// Describe fills in the status' tunnel mode, device and addresses,
	// the forward's counters and the apps' mappings.
	Describe(s *status.Status)
	// Interface is the tunnel's interface as the hooks'
	// {{VPN_INTERFACE}} names it ("" in netstack mode: the service
	// listens on the host, any interface).
	Interface() string
	// Close removes everything the plane made (bridge, stack, TUN and
	// its routing rules, tables, exec's namespace), after the WireGuard
	// device closed.
	Close()
}

// planeConfig is what a data plane takes from the daemon: values and
// funcs, never the daemon itself.
type planeConfig struct {
	wg      tunnel.WireGuard
	forward config.Forward
	target  target
	log     *slog.Logger
	// control lists the provider's control endpoints (nil: it has
	// none).
	control func() []provider.Endpoint
	// publicIP is the address the responder offers when a lease names
	// none (invalid while unknown).
	publicIP func() netip.Addr
	// appMappings hears the apps' mappings whenever they change.
	appMappings func([]status.AppMapping)
}

// target is where the forwarded ports go: --forward's host and port (0:
// the forwarded port itself), for these protocols.
type target struct {
	host      string
	port      uint16
	protocols []string
}

// String is HOST, or HOST:PORT with a port.
func (t target) String() string {
	if t.port == 0 {
		return t.host
	}
	return net.JoinHostPort(t.host, strconv.Itoa(int(t.port)))
}

// to is the port the service gets a forwarded port's traffic on.
func (t target) to(public uint16) uint16 {
	if t.port == 0 {
		return public
	}
	return t.port
}

// ports is what every plane does with the forwarded ports: a path to the
// service (the bridge, or the kernel's redirects) and, in the kernel
// planes, the responder for the apps that ask (nil in netstack mode, or
// with NAT-PMP and UPnP off).
type ports struct {
	target target
	path   portPath
	resp   *responder
	onApps func([]status.AppMapping)
}

// portPath takes the forwarded ports to the service: the bridge
// (netstack, tun mode with a loopback service) or the kernel's redirects
// (tun mode, exec).
type portPath interface {
	// setPorts serves l's ports (none: the lease was lost); for a held
	// lease it calls offer first, the apps' mappings that changes
	// arriving through setApps.
	setPorts(l provider.Lease, offer func(provider.Lease))
	// setApps hears the apps' mappings (the responder's Changed).
	setApps(ms []portmap.Mapping)
	stats() forward.Stats
	close()
}

// ApplyPorts implements plane.
func (p *ports) ApplyPorts(l provider.Lease) { p.path.setPorts(l, p.resp.offer) }

// Serve implements plane.
func (p *ports) Serve(ctx context.Context, goFunc func(func())) { p.resp.serve(ctx, goFunc) }

// appsChanged is the responder's Changed: the path follows the apps'
// mappings, then the API hears them.
func (p *ports) appsChanged(ms []portmap.Mapping) {
	p.path.setApps(ms)
	p.onApps(appMappings(ms))
}

// describe fills in the forward's part of the status (ns: the stack's
// counters, zero without one).
func (p *ports) describe(s *status.Status, ns netstack.Stats) {
	bs := p.path.stats()
	s.Forward = status.Forward{
		Target: p.target.String(), Protocols: p.target.protocols,
		TCPOpen: bs.TCPOpen, TCPTotal: bs.TCPTotal, TCPRefused: bs.TCPRefused, TCPEvicted: bs.TCPEvicted,
		TCPPending: int64(ns.PendingHandshakes), SYNDropped: ns.DroppedSYN, HandshakesFailed: ns.FailedHandshakes, HandshakesEvicted: ns.EvictedHandshakes,
		UDPFlows: bs.UDPFlows, UDPPackets: bs.UDPPackets, UDPRefused: bs.UDPRefused, UDPDropped: ns.UDPDropped, BytesIn: bs.BytesIn, BytesOut: bs.BytesOut,
	}
	if ms := p.resp.mappings(); len(ms) > 0 {
		s.AppMappings = ms
	}
}

// close stops answering the apps and takes the path down.
func (p *ports) close() {
	p.resp.close()
	p.path.close()
}

// addresses are the plane's addresses as the status shows them.
func addresses(ps []netip.Prefix) []string {
	var out []string
	for _, a := range ps {
		out = append(out, a.String())
	}
	return out
}

// guardControl makes the provider's control endpoints (NAT-PMP's 5351,
// PIA's port API) reachable from vpnfwd's own sockets only, with put: in
// the kernel data planes every program shares the tunnel (tun mode's
// namespace, exec's). (In netstack mode only the proxies reach the
// tunnel, and their guard refuses.)
func guardControl(ctx context.Context, log *slog.Logger, control func() []provider.Endpoint, put func(context.Context, []nft.Reserved) error) {
	if control == nil {
		return
	}
	var rs []nft.Reserved
	for _, e := range control() {
		rs = append(rs, nft.Reserved{Proto: e.Network, Addr: e.Addr})
	}
	if err := put(ctx, rs); err != nil {
		log.Error("keeping the provider's port-forwarding service to vpnfwd: other programs in the namespace can reach it", "err", err)
		return
	}
	log.Info("the provider's port-forwarding service is vpnfwd's alone (other programs are refused)", "endpoints", fmt.Sprint(rs))
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
