package daemon

import (
	"context"
	"strconv"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/status"
)

// Status implements api.Source from the session's snapshot and the
// bridge's and publishers' counters: no call into the WireGuard device.
func (d *Daemon) Status() status.Status {
	snap := d.sess.Snapshot()
	s := status.Status{State: string(snap.State), Version: d.version, Since: d.since}
	s.Tunnel = status.Tunnel{
		State: string(snap.State), Endpoint: snap.Endpoint.String(),
		LastHandshake: snap.Tunnel.LastHandshake, RxBytes: snap.Tunnel.RxBytes, TxBytes: snap.Tunnel.TxBytes,
		DownSince: snap.DownSince, LastRecovery: snap.LastRecovery,
		Rehandshakes: snap.Rehandshakes, Failovers: snap.Failovers, Remaps: snap.Remaps, Recoveries: snap.Recoveries, ProbeFailures: snap.ProbeFailures, FailedChecks: snap.FailedChecks,
	}
	if snap.State == session.StateStopping {
		s.Tunnel.State = "down"
	}
	s.Tunnel.Server = serverAt(d.cfg.Servers, snap.Endpoint)
	d.plane.Describe(&s)
	s.Port = d.portStatus(d.reported(snap))
	s.Memory.HeapLive, s.Memory.Held = memoryNow()
	for _, l := range d.locals {
		ls := l.Stats()
		s.LocalForwards = append(s.LocalForwards, status.LocalForward(ls))
	}
	if d.socksL != nil {
		s.Proxy.SOCKS5 = d.socksL.Addr().String()
	}
	if d.httpL != nil {
		s.Proxy.HTTP = d.httpL.Addr().String()
	}
	if d.dnsUDP != nil {
		s.DNS = d.dnsUDP.LocalAddr().String()
	}
	if k := d.cfg.KillSwitch; k.Enabled {
		s.KillSwitch = status.KillSwitch{Enabled: true, Table: k.Table, Lockdown: k.Lockdown, Scope: "namespace"}
		switch {
		case k.OnlyUID != nil:
			s.KillSwitch.Scope = "uid " + strconv.Itoa(*k.OnlyUID)
		case k.OnlyCgroup != "":
			s.KillSwitch.Scope = "cgroup " + k.OnlyCgroup
		}
	}
	s.Publish = d.disp.Results()
	s.PublicIP = d.publicIP.Load()
	return s
}

// portStatus describes a lease for status and the event stream.
func (d *Daemon) portStatus(l provider.Lease, h session.PortHealth) status.Port {
	p := status.Port{Provider: d.cfg.Provider.Name, Ports: []int{}, ListenPorts: []int{},
		Protocols: l.Protocols, Expires: l.Expires, LastRenewal: l.Renewed, Error: l.Error}
	if l.Held() {
		p.Verified, p.VerifiedBy, p.Dead, p.DeadSince, p.Outside, p.OutsideAt = h.Verified, h.VerifiedBy, h.Dead, h.DeadSince, h.Outside, h.OutsideAt
	}
	if l.PublicIP.IsValid() {
		p.PublicIP = l.PublicIP.String()
	}
	for _, port := range l.Ports {
		p.Ports = append(p.Ports, int(port.Public))
		p.ListenPorts = append(p.ListenPorts, int(port.Local))
	}
	if len(p.Ports) > 0 {
		p.Port = p.Ports[0]
	}
	return p
}

// SOCKS5Addr is where the SOCKS5 proxy listens ("" when off).
func (d *Daemon) SOCKS5Addr() string {
	if d.socksL == nil {
		return ""
	}
	return d.socksL.Addr().String()
}

// APIAddr is where the control API listens ("" when off).
func (d *Daemon) APIAddr() string {
	if d.apiL == nil {
		return ""
	}
	return d.apiL.Addr().String()
}

// SetRunning implements api.Controller: the tunnel stopped (the port
// released, the device down; the kill switch stays) or started again.
func (d *Daemon) SetRunning(ctx context.Context, running bool) (string, error) {
	return d.sess.SetRunning(ctx, running)
}
