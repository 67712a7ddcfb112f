package daemon

import (
	"context"
	"net"
	"net/netip"

	"github.com/vpnfwd/vpnfwd/netns"
	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/status"
	"github.com/vpnfwd/vpnfwd/upnp"
)

// execTun is the TUN's name inside exec's namespace (the hooks'
// {{VPN_INTERFACE}} there).
const execTun = "tun0"

// execDNS is where CMD's resolv.conf points: the forwarder's sockets,
// made inside CMD's namespace.
var execDNS = netip.MustParseAddrPort("127.0.0.1:53")

// execPlane is exec's data plane: a TUN inside a network namespace of
// its own holding only lo and the TUN, made by an agent (netns), with
// the DNS forwarder's sockets beside it. The forwarded port is
// redirected there, and apps in it that ask get the other held ports;
// the redirects, guard and answer tables go with the namespace.
// (Sandbox's own Guard and Close are the agent's; the plane's wrap
// them.)
type execPlane struct {
	*netns.Sandbox
	ports
	c planeConfig
}

// openExec starts the namespace, keeps the provider's endpoints to
// vpnfwd there, and starts answering CMD's apps.
func openExec(c planeConfig) (*execPlane, error) {
	w := c.wg
	var control []provider.Endpoint
	if c.control != nil {
		control = c.control()
	}
	s, err := netns.Start(netns.Config{Tun: execTun, MTU: w.MTU, Addresses: w.Addresses(), Routes: allowedIPs(w.Peers), DNS: execDNS,
		Gateway: appGateway(c.forward.NATPMP, control, w.DNSServers())})
	if err != nil {
		return nil, err
	}
	c.log.Info("exec: a network namespace with only lo and the tunnel is ready")
	p := &execPlane{Sandbox: s, c: c, ports: ports{target: c.target, onApps: c.appMappings}}
	p.path = &redirects{target: c.target, log: c.log, put: p.redirect}
	gctx, cancel := context.WithTimeout(context.Background(), guardWait)
	p.Guard(gctx)
	cancel()
	p.resp = openResponder(responderConfig{natpmp: c.forward.NATPMP, upnp: c.forward.UPnP, log: c.log, target: c.target, publicIP: c.publicIP,
		changed: p.appsChanged, sockets: s.NetProc(), local: p.local, openNATPMP: p.openNATPMP, openIGD: p.openIGD})
	return p, nil
}

// Guard implements plane: inside CMD's namespace the provider's control
// endpoints are reachable from vpnfwd's own sockets only.
func (p *execPlane) Guard(ctx context.Context) {
	guardControl(ctx, p.c.log, p.c.control, p.Sandbox.Guard)
}

// redirect puts the redirects in, in CMD's namespace.
func (p *execPlane) redirect(rs []nft.PortRedirect) error {
	var nrs []netns.Redirect
	for _, r := range rs {
		nrs = append(nrs, netns.Redirect{Proto: r.Proto, From: r.From, To: r.To})
	}
	ctx, cancel := context.WithTimeout(context.Background(), agentWait)
	defer cancel()
	return p.Redirect(ctx, nrs)
}

// agentWait bounds a request to the namespace's agent.
const agentWait = guardWait

// openNATPMP has the agent take CMD's NAT-PMP and PCP requests to any
// address's 5351 to a socket inside.
func (p *execPlane) openNATPMP() (net.PacketConn, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), agentWait)
	defer cancel()
	pc, err := p.Answer(ctx, portmap.Port)
	return pc, nil, err
}

// openIGD has the agent open the IGD's sockets and tables inside.
func (p *execPlane) openIGD() (net.PacketConn, net.Listener, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), agentWait)
	defer cancel()
	pc, err := p.Answer(ctx, upnp.SSDPPort)
	if err != nil {
		return nil, nil, nil, err
	}
	l, err := p.ListenLocal(ctx)
	if err != nil {
		pc.Close()
		return nil, nil, nil, err
	}
	return pc, l, nil, nil
}

// local says whether a is an address of exec's namespace.
func (p *execPlane) local(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, pr := range p.Addresses() {
		if pr.Addr().Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

func (p *execPlane) Describe(s *status.Status) {
	s.Tunnel.Mode = "exec"
	s.Tunnel.Addresses = addresses(p.Addresses())
	p.describe(s, netstack.Stats{})
}

func (p *execPlane) Interface() string { return execTun }

// Close stops answering and ends the namespace: the agent, CMD if still
// running, and the tables inside.
func (p *execPlane) Close() {
	p.ports.close()
	p.Sandbox.Close()
}

// fallbackGateway is exec's gateway when neither the provider nor the
// wg-quick file names one: link-local, never a real host.
var fallbackGateway = netip.AddrFrom4([4]byte{169, 254, 53, 51})

// appGateway is the gateway exec's default route names, where CMD's
// NAT-PMP and PCP clients send (and vpnfwd answers): the provider's
// NAT-PMP gateway, else the tunnel's IPv4 DNS server, else a link-local
// address. Any will do: every address's 5351 is answered inside.
func appGateway(natpmp bool, control []provider.Endpoint, dns []netip.Addr) netip.Addr {
	if !natpmp {
		return netip.Addr{}
	}
	for _, e := range control {
		if e.Network == "udp" && e.Addr.Port() == portmap.Port && e.Addr.Addr().Unmap().Is4() {
			return e.Addr.Addr().Unmap()
		}
	}
	for _, a := range dns {
		if a.Unmap().Is4() {
			return a.Unmap()
		}
	}
	return fallbackGateway
}
