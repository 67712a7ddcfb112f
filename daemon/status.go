package daemon

import (
	"context"
	"net"
	"strconv"

	"github.com/vpnfwd/vpnfwd/failover"
	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/status"
)

// Status implements api.Source from the session's snapshot and the
// bridge's and publishers' counters: no call into the WireGuard device.
func (d *Daemon) Status() status.Status {
	snap := d.sess.Snapshot()
	s := status.Status{Version: d.version, Since: d.since}
	s.State, s.Tunnel, s.Port = snap.Status()
	s.Tunnel.Server = failover.ServerAt(d.cfg.Servers, snap.Endpoint)
	s.Tunnel.Mode = "netstack"
	switch {
	case d.sandbox != nil:
		s.Tunnel.Mode = "exec"
	case d.tun != nil:
		s.Tunnel.Mode, s.Tunnel.Device = "tun", d.tun.Name()
	}
	for _, a := range d.plane.Addresses() {
		s.Tunnel.Addresses = append(s.Tunnel.Addresses, a.String())
	}
	s.Memory.HeapLive, s.Memory.Held = memoryNow()
	var bs forward.Stats
	var ns netstack.Stats
	if d.bridge != nil {
		bs = d.bridge.Stats()
	}
	if d.stack != nil {
		ns = d.stack.Stats()
	}
	s.Forward = status.Forward{
		Target: d.targetHost, Protocols: d.cfg.Forward.Protocols,
		TCPOpen: bs.TCPOpen, TCPTotal: bs.TCPTotal, TCPRefused: bs.TCPRefused, TCPEvicted: bs.TCPEvicted,
		TCPPending: int64(ns.PendingHandshakes), SYNDropped: ns.DroppedSYN, HandshakesFailed: ns.FailedHandshakes, HandshakesEvicted: ns.EvictedHandshakes,
		UDPFlows: bs.UDPFlows, UDPPackets: bs.UDPPackets, UDPRefused: bs.UDPRefused, UDPDropped: ns.UDPDropped, BytesIn: bs.BytesIn, BytesOut: bs.BytesOut,
	}
	if d.targetPort != 0 {
		s.Forward.Target = net.JoinHostPort(d.targetHost, strconv.Itoa(int(d.targetPort)))
	}
	if d.pmp != nil {
		if ms := d.pmp.Mappings(); len(ms) > 0 {
			s.AppMappings = appMappings(ms)
		}
	}
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
