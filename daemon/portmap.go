package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/status"
	"github.com/vpnfwd/vpnfwd/upnp"
)

// responder answers the apps in the namespace (tun mode: vpnfwd's own;
// exec: CMD's) that ask for a port, with the ports vpnfwd holds, in one
// table (portmap): by NAT-PMP and PCP, and by UPnP IGD. It belongs to
// the kernel planes; its methods do nothing on a nil *responder (none
// in netstack mode, or with both off or failed).
type responder struct {
	pmp  *portmap.Server
	conn net.PacketConn // NAT-PMP and PCP (nil: off)
	// unconn undoes what conn needed beside the socket (nil: nothing).
	unconn   func()
	igd      *igdResponder // nil: off
	log      *slog.Logger
	target   target
	publicIP func() netip.Addr
}

// responderConfig is what a kernel plane gives its responder.
type responderConfig struct {
	natpmp, upnp bool
	log          *slog.Logger
	target       target
	publicIP     func() netip.Addr
	changed      func([]portmap.Mapping)
	// sockets is the namespace's /proc/PID/net: who may have a held
	// port is decided by its sockets (a program listening on the port
	// keeps it).
	sockets string
	// local says whether an address is the namespace's own (nil: the
	// IGD's default, this host's).
	local func(netip.Addr) bool
	// openNATPMP opens the NAT-PMP and PCP socket, where the apps'
	// requests to any gateway's 5351 arrive; the func it returns (nil:
	// none) undoes what it set up beside the socket.
	openNATPMP func() (net.PacketConn, func(), error)
	// openIGD opens the IGD's SSDP socket (the namespace's searches
	// arrive there) and its HTTP listener (for the namespace's own
	// connections only), and an undo func as openNATPMP does.
	openIGD func() (net.PacketConn, net.Listener, func(), error)
}

// openResponder starts the responder (nil when both are off or failed:
// a failure costs that feature only).
func openResponder(c responderConfig) *responder {
	if !c.natpmp && !c.upnp {
		return nil
	}
	r := &responder{log: c.log, target: c.target, publicIP: c.publicIP}
	r.pmp = portmap.New(portmap.Config{Log: c.log.With("component", "nat-pmp"), Sockets: &portmap.CachedSockets{Dir: c.sockets}, Changed: c.changed})
	if c.natpmp {
		r.openNATPMP(c.openNATPMP)
	}
	if c.upnp {
		r.openIGD(c)
	}
	if r.conn == nil && r.igd == nil {
		return nil
	}
	return r
}

// openNATPMP opens the NAT-PMP and PCP socket.
func (r *responder) openNATPMP(open func() (net.PacketConn, func(), error)) {
	pc, undo, err := open()
	if err != nil {
		r.log.Warn("apps that ask for a port by NAT-PMP or PCP will not be answered", "err", err)
		return
	}
	// A flood from many sources fills a socket's receive queue before
	// the responder drops it request by request; a deeper queue (the
	// kernel caps it at net.core.rmem_max) leaves room for an app's
	// request among them.
	if u, ok := pc.(*net.UDPConn); ok {
		u.SetReadBuffer(4 << 20)
	}
	r.conn, r.unconn = pc, undo
	r.log.Info("answering the apps' NAT-PMP and PCP requests (any gateway's UDP 5351) with the port vpnfwd holds")
}

// openIGD starts the UPnP IGD on the table r.pmp.
func (r *responder) openIGD(c responderConfig) {
	pc, l, undo, err := c.openIGD()
	if err != nil {
		r.log.Warn("apps that ask for a port by UPnP will not be answered", "err", err)
		return
	}
	cfg := upnp.Config{Gateway: r.pmp, Log: c.log.With("component", "upnp"), Owner: portmap.ProcSockets(c.sockets).TCPOwner, Local: c.local}
	r.igd = &igdResponder{srv: upnp.New(cfg), l: l, pc: pc, undo: undo}
	r.log.Info("answering the apps' UPnP IGD discovery (SSDP, any address's UDP 1900) and requests with the port vpnfwd holds",
		"igd", "http://127.0.0.1:"+strconv.Itoa(l.Addr().(*net.TCPAddr).Port)+"/rootDesc.xml")
}

// offer tells the responder which held ports apps may have: those
// vpnfwd's configuration sends nowhere in particular (no --forward
// port), each at the same public address.
func (r *responder) offer(l provider.Lease) {
	if r == nil {
		return
	}
	ip := l.PublicIP
	if !ip.IsValid() {
		ip = r.publicIP()
	}
	var slots []portmap.Slot
	for _, p := range l.Ports {
		s := portmap.Slot{Public: p.Public, Local: p.Local, Proto: p.Protocol}
		if r.target.port != 0 {
			s.Taken, s.Target = true, r.target.port
		}
		slots = append(slots, s)
	}
	r.pmp.SetPorts(ip, slots)
}

// mappings are the apps' mappings in force.
func (r *responder) mappings() []status.AppMapping {
	if r == nil {
		return nil
	}
	return appMappings(r.pmp.Mappings())
}

// serve runs the NAT-PMP/PCP socket and the IGD until ctx ends (or
// their sockets close); the table's mappings expire every second
// meanwhile.
func (r *responder) serve(ctx context.Context, goFunc func(func())) {
	if r == nil {
		return
	}
	if r.conn != nil {
		goFunc(func() { r.pmp.Serve(r.conn) }) // expires too
	} else {
		goFunc(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					r.pmp.Expire()
				}
			}
		})
	}
	if r.igd != nil {
		goFunc(func() {
			if err := r.igd.srv.Serve(ctx, r.igd.l, r.igd.pc); err != nil && ctx.Err() == nil {
				r.log.Debug("UPnP IGD stopped", "err", err)
			}
		})
	}
}

// close stops answering and undoes what the sockets needed (tun mode's
// tables; exec's go with the namespace).
func (r *responder) close() {
	if r == nil {
		return
	}
	r.igd.close()
	if r.conn == nil {
		return
	}
	r.conn.Close()
	if r.unconn != nil {
		r.unconn()
	}
}

// appMappings are the apps' mappings as the status and the
// "app_mappings" event show them.
func appMappings(ms []portmap.Mapping) []status.AppMapping {
	out := []status.AppMapping{}
	for _, m := range ms {
		out = append(out, status.AppMapping{Protocol: m.Proto, InternalPort: int(m.Internal), PublicPort: int(m.Public),
			Client: m.Client.String(), Via: m.Via, Expires: m.Expires})
	}
	return out
}
