package daemon

import (
	"net"
	"strconv"

	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/session"
)

// apply is the session's apply stage (session.Options.Apply): the data
// plane serves each new lease before any consumer hears of it (the
// session then records it as applied); consumers subscribe to the session
// themselves (publishers, the API's event stream).
func (d *Daemon) apply(ev session.Event) {
	switch ev.Kind {
	case session.KindPort:
		d.moveBridge(ev.Lease)
	case session.KindLost:
		if d.bridge != nil {
			d.bridge.SetRoutes(nil)
		}
	}
	if (ev.Kind == session.KindPort || ev.Kind == session.KindReconnect) && !ev.Lease.PublicIP.IsValid() {
		d.askPublicIP()
	}
}

// moveBridge points the bridge at the lease's ports. In tun mode there is
// no bridge: the service is reached on the port itself.
func (d *Daemon) moveBridge(l provider.Lease) {
	if d.bridge == nil {
		d.tunLease.Store(&l)
	}
	d.offerPorts(l)
	if d.bridge == nil {
		d.tunPorts()
		return
	}
	var routes []forward.Route
	for _, p := range l.Ports {
		t := d.targetPort
		if t == 0 {
			t = p.Public
		}
		routes = append(routes, forward.Route{Listen: p.Local, Target: t, Proto: p.Protocol})
	}
	if err := d.bridge.SetRoutes(routes); err != nil {
		d.log.Error("listening on the forwarded port", "err", err)
	}
	for _, r := range routes {
		d.log.Info("listening", "tunnel_port", r.Listen,
			"target", net.JoinHostPort(d.targetHost, strconv.Itoa(int(r.Target))), "protocols", d.cfg.Forward.Protocols)
		if w := forward.LoopbackTrustWarning(d.targetHost, r.Target); w != "" {
			d.log.Warn(w)
		}
	}
}

// PortSink is a sink that passes each new port's lease to the channel
// without ever blocking (the demo, exec and leak-check wait on it).
func PortSink() (session.Sink, <-chan provider.Lease) {
	ch := make(chan provider.Lease, 1)
	return func(ev session.Event) {
		if ev.Kind != session.KindPort {
			return
		}
		select {
		case ch <- ev.Lease:
		default:
		}
	}, ch
}

// iface is the tunnel's interface as the hooks' {{VPN_INTERFACE}} names
// it: the TUN in tun mode, exec's TUN inside its namespace; none in
// netstack mode (the service listens on the host: any interface).
func (d *Daemon) iface() string {
	switch {
	case d.sandbox != nil:
		return execTun
	case d.tun != nil:
		return d.tun.Name()
	}
	return ""
}
