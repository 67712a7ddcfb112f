package daemon

import (
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/session"
)

// apply is the session's apply stage (session.Options.Apply): the data
// plane serves each new lease before any consumer hears of it (the
// session then records it as applied); consumers subscribe to the session
// themselves (publishers, the API's event stream).
func (d *Daemon) apply(ev session.Event) {
	if ev.Kind == session.KindPort || ev.Kind == session.KindLost {
		d.plane.ApplyPorts(ev.Lease) // a lost lease has no ports
	}
	if (ev.Kind == session.KindPort || ev.Kind == session.KindReconnect) && !ev.Lease.PublicIP.IsValid() {
		d.askPublicIP()
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
