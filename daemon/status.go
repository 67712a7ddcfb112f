package daemon

import (
	"context"
	"strconv"

	"github.com/vpnfwd/vpnfwd/failover"
	"github.com/vpnfwd/vpnfwd/status"
)

// Status implements api.Source from the session's snapshot and the
// bridge's and publishers' counters: no call into the WireGuard device.
func (d *Daemon) Status() status.Status {
	snap := d.sess.Snapshot()
	s := status.Status{Version: d.version, Since: d.since}
	s.State, s.Tunnel, s.Port = snap.Status()
	s.Tunnel.Server = failover.ServerAt(d.cfg.Servers, snap.Endpoint)
	d.plane.Describe(&s)
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
	s.Publish = []status.Consumer{}
	for _, p := range d.pubs {
		s.Publish = append(s.Publish, p.Result())
	}
	s.PublicIP = d.publicIP.Load()
	return s
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
