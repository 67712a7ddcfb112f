package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/status"
	"github.com/vpnfwd/vpnfwd/tundev"
	"github.com/vpnfwd/vpnfwd/upnp"
)

// tunMark is the WireGuard socket's mark in tun mode: the routing rules
// keep marked packets out of the tunnel (the kill switch uses the same).
const tunMark = nft.WireGuardMark

// tunPlane is tun mode's data plane: a kernel TUN named in the config,
// with the tunnel's addresses and every peer's allowed IPs routed
// through it except the WireGuard socket's own packets. Everything in
// this namespace uses the tunnel; the forwarded port reaches the service
// directly or by a redirect in the kernel (a service on loopback: by
// vpnfwd's bridge on the tunnel's address), and apps that ask get the
// other held ports.
type tunPlane struct {
	*tundev.Device
	ports
	c planeConfig
}

// openTun opens the TUN, keeps the provider's endpoints to vpnfwd, and
// starts answering the apps.
func openTun(c planeConfig) (*tunPlane, error) {
	w := c.wg
	routes := allowedIPs(w.Peers)
	t, err := tundev.Open(tundev.Config{Name: w.Tun, MTU: w.MTU, Addresses: w.Addresses(), Routes: routes, Mark: tunMark, OwnMark: nft.OwnMark})
	if err != nil {
		return nil, err
	}
	for _, warn := range t.Warnings {
		c.log.Warn(warn)
	}
	c.log.Info("tun mode: everything in this network namespace goes through the tunnel", "device", w.Tun, "routes", fmt.Sprint(routes))
	p := &tunPlane{Device: t, c: c, ports: ports{target: c.target, onApps: c.appMappings}}
	if tunBridged(c.target) {
		// A service on loopback cannot be reached by a redirect (the
		// kernel does not route to 127.0.0.0/8 from another interface):
		// vpnfwd's bridge listens on the tunnel's address instead.
		p.path = newBridge(t, c.forward, c.target, c.log)
		c.log.Info("tun mode with a loopback service: the bridge listens on the tunnel's address", "target", c.forward.Target)
	} else {
		p.path = &redirects{target: c.target, log: c.log, remove: true, put: func(rs []nft.PortRedirect) error {
			return nft.Redirect(p.table("fwd"), w.Tun, rs)
		}}
	}
	gctx, cancel := context.WithTimeout(context.Background(), guardWait)
	p.Guard(gctx)
	cancel()
	p.resp = openResponder(responderConfig{natpmp: c.forward.NATPMP, upnp: c.forward.UPnP, log: c.log, target: c.target, publicIP: c.publicIP,
		changed: p.appsChanged, sockets: "/proc/self/net", openNATPMP: p.openNATPMP, openIGD: p.openIGD})
	return p, nil
}

// guardWait bounds putting the guard in at start.
const guardWait = 5 * time.Second

// table names one of tun mode's nftables tables: "guard" keeps the
// provider's control endpoints to vpnfwd, "fwd" redirects the forwarded
// port, "pmp" and "ssdp" take the namespace's NAT-PMP/PCP and SSDP to
// vpnfwd's responder, "igd" drops connections to the IGD's HTTP port
// from other hosts.
func (p *tunPlane) table(what string) string { return "vpnfwd_" + what + "_" + p.c.wg.Tun }

// tunBridged says whether tun mode bridges the forwarded port (--forward
// names a loopback address and a port) rather than redirecting it in the
// kernel (--forward with the tunnel's address or 0.0.0.0 and a port) or
// leaving it to the service (no port: the service listens on the
// forwarded port itself, on all addresses).
func tunBridged(t target) bool { return t.port != 0 && isLoopback(t.host) }

// Guard implements plane: the provider's control endpoints are
// reachable from vpnfwd's own (marked) sockets only.
func (p *tunPlane) Guard(ctx context.Context) {
	guardControl(ctx, p.c.log, p.c.control, func(_ context.Context, rs []nft.Reserved) error {
		return nft.Guard(p.table("guard"), nft.OwnMark, rs)
	})
}

// openNATPMP listens on 127.0.0.1:5351, where the apps' requests to any
// gateway's 5351 are taken; vpnfwd's own requests (marked) still reach
// the provider's gateway.
func (p *tunPlane) openNATPMP() (net.PacketConn, func(), error) {
	pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), portmap.Port).String())
	if err != nil {
		return nil, nil, err
	}
	if err := nft.AnswerLocally(p.table("pmp"), portmap.Port, nft.OwnMark, nft.WireGuardMark); err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, func() {
		if err := nft.AnswerLocally(p.table("pmp"), 0); err != nil {
			p.c.log.Error("removing the NAT-PMP table", "table", p.table("pmp"), "err", err)
		}
	}, nil
}

// openIGD opens the IGD's sockets in vpnfwd's namespace, and its tables.
func (p *tunPlane) openIGD() (net.PacketConn, net.Listener, func(), error) {
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	// No SO_REUSEADDR: with it another program here could bind
	// 127.0.0.1:1900 too and take the apps' searches. libtorrent binds
	// its own SSDP socket to 1900 of each interface's address, which does
	// not clash with 127.0.0.1; a program binding 0.0.0.0:1900 does.
	pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(lo, upnp.SSDPPort).String())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("another program has UDP 127.0.0.1:1900: %w", err)
	}
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err == nil {
		err = nft.LoopbackOnly(p.table("igd"), uint16(l.Addr().(*net.TCPAddr).Port))
		if err == nil {
			err = nft.AnswerLocally(p.table("ssdp"), upnp.SSDPPort, nft.OwnMark, nft.WireGuardMark)
		}
		if err != nil {
			l.Close()
			nft.LoopbackOnly(p.table("igd"), 0)
		}
	}
	if err != nil {
		pc.Close()
		return nil, nil, nil, err
	}
	return pc, l, func() {
		if err := nft.AnswerLocally(p.table("ssdp"), 0); err != nil {
			p.c.log.Error("removing the SSDP table", "table", p.table("ssdp"), "err", err)
		}
		if err := nft.LoopbackOnly(p.table("igd"), 0); err != nil {
			p.c.log.Error("removing the IGD's table", "table", p.table("igd"), "err", err)
		}
	}, nil
}

func (p *tunPlane) Describe(s *status.Status) {
	s.Tunnel.Mode, s.Tunnel.Device = "tun", p.Name()
	s.Tunnel.Addresses = addresses(p.Addresses())
	p.describe(s, netstack.Stats{})
}

func (p *tunPlane) Interface() string { return p.Name() }

// Close stops answering, removes the redirects (or closes the bridge)
// and the guard, and closes the TUN (its routing rules go with it).
func (p *tunPlane) Close() {
	p.ports.close()
	if err := nft.Guard(p.table("guard"), nft.OwnMark, nil); err != nil {
		p.c.log.Error("removing the guard table", "table", p.table("guard"), "err", err)
	}
	if err := p.Device.Close(); err != nil {
		p.c.log.Error("removing the TUN", "err", err)
	}
}

// checkTun checks before anything starts that tun mode can run: the
// capability, and --forward's host, which must be loopback (bridged),
// the tunnel's address or all addresses (redirected in the kernel).
func checkTun(t target, forward string, addrs []netip.Prefix) error {
	h := t.host
	ok := isLoopback(h) || h == "" || h == "0.0.0.0" || h == "::"
	if a, err := netip.ParseAddr(h); err == nil && !ok {
		for _, p := range addrs {
			ok = ok || p.Addr() == a.Unmap()
		}
	}
	if !ok {
		return fmt.Errorf("--forward %s: in tun mode the service must be in this network namespace: give 127.0.0.1:PORT for a service on loopback (vpnfwd bridges to it), 0.0.0.0:PORT or the tunnel's address for one on all addresses (redirected in the kernel), or no port for a service that listens on the forwarded port itself", forward)
	}
	return tundev.Check()
}

// isLoopback: "localhost" or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
