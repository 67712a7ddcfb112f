package daemon

import (
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/publish"
	"github.com/vpnfwd/vpnfwd/session"
)

// onEvent is the daemon's subscriber: it runs on a goroutine of its own,
// in event order (session.Sink): the bridge or the tun-mode redirect
// moves, the publishers and the API stream are queued.
func (d *Daemon) onEvent(ev session.Event) {
	switch ev.Kind {
	case session.KindPort:
		released := d.released(ev.Lease)
		d.plane.ApplyPorts(ev.Lease)
		d.setApplied(ev.Lease)
		d.disp.Send(publish.Event{Ports: ev.Lease.PublicPorts(), Reason: "port", Released: released})
		if !ev.Lease.PublicIP.IsValid() {
			d.askPublicIP()
		}
		d.broker.Publish("port", d.portStatus(ev.Lease, ev.Health))
	case session.KindLost:
		d.plane.ApplyPorts(ev.Lease)
		released := d.released(ev.Lease)
		d.setApplied(ev.Lease)
		d.disp.Send(publish.Event{Reason: "lost", Released: released})
		d.broker.Publish("port", d.portStatus(ev.Lease, ev.Health))
	case session.KindReconnect:
		d.disp.Send(publish.Event{Ports: ev.Lease.PublicPorts(), Reason: "reconnect"})
		if !ev.Lease.PublicIP.IsValid() {
			d.askPublicIP()
		}
	case session.KindState:
		d.broker.Publish("state", map[string]string{"state": string(ev.State), "detail": ev.Detail})
	case session.KindHealth:
		d.broker.Publish("health", d.portStatus(ev.Lease, ev.Health))
	case session.KindError, session.KindRecovery:
		d.broker.Publish(string(ev.Kind), map[string]any{"detail": ev.Detail, "state": ev.State, "at": ev.At})
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

// released are the public ports the last applied lease held that the
// next one does not (a port-lost hook hears them).
func (d *Daemon) released(next provider.Lease) []uint16 {
	prev := d.applied.Load()
	if prev == nil || !prev.Held() || prev.SamePorts(next) {
		return nil
	}
	return prev.PublicPorts()
}

// setApplied records the ports the bridge (or redirect) now serves: status
// reports a port only once it works here, never in the moment between the
// session taking a new port and this subscriber applying it.
func (d *Daemon) setApplied(l provider.Lease) { d.applied.Store(&l) }

// reported is the lease status shows: the session's (fresh renewals,
// errors, health) while it forwards the ports applied here, else the
// applied one, with nothing verified yet.
func (d *Daemon) reported(snap session.Snapshot) (provider.Lease, session.PortHealth) {
	a := d.applied.Load()
	switch {
	case a == nil && !snap.Lease.Held():
		return snap.Lease, snap.Port
	case a == nil:
		return provider.Lease{Provider: snap.Lease.Provider}, session.PortHealth{}
	case a.SamePorts(snap.Lease):
		return snap.Lease, snap.Port
	}
	return *a, session.PortHealth{}
}
