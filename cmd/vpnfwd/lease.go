package main

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/vpnfwd/vpnfwd/api"
	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/publish"
	"github.com/vpnfwd/vpnfwd/wg"
)

// onLease is the provider's report: it moves the bridge, tells the
// consumers and the API subscribers.
func (d *daemon) onLease(l provider.Lease) {
	// A lease may arrive before the handshake poll notices the tunnel.
	if st, err := d.dev.Stats(); err == nil && !st.LastHandshake.IsZero() {
		d.mu.Lock()
		connecting := d.tunnel == wg.StateConnecting
		d.mu.Unlock()
		if connecting {
			d.setTunnel(wg.StateUp)
		}
	}
	d.mu.Lock()
	prev := d.lease
	d.lease = l
	if l.Held() {
		d.provErr = ""
	}
	subs := d.leaseSub
	d.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- l:
		default:
		}
	}
	if l.Held() == prev.Held() && l.SamePorts(prev) {
		d.log.Debug("lease renewed", "ports", l.PublicPorts(), "expires", l.Expires)
		return
	}
	if !l.Held() {
		d.log.Warn("forwarded port lost; consumers keep their settings until a new port comes", "previous", prev.PublicPorts())
		d.bridge.SetRoutes(nil)
		d.disp.Send(publish.Event{Reason: "lost"})
		d.broker.Publish("port", d.Status().Port)
		return
	}
	var routes []forward.Route
	for _, p := range l.Ports {
		t := d.targetPort
		if t == 0 {
			t = p.Public
		}
		routes = append(routes, forward.Route{Listen: p.Local, Target: t})
	}
	args := []any{"ports", l.PublicPorts(), "provider", l.Provider}
	if l.PublicIP.IsValid() {
		args = append(args, "public_ip", l.PublicIP.String())
	}
	if !l.Expires.IsZero() {
		args = append(args, "lease", time.Until(l.Expires).Round(time.Second).String())
	}
	if prev.Held() {
		args = append(args, "previous", prev.PublicPorts())
	}
	d.log.Info("port forwarded", args...)
	if err := d.bridge.SetRoutes(routes); err != nil {
		d.log.Error("listening on the forwarded port", "err", err)
	}
	for _, r := range routes {
		d.log.Info("listening", "tunnel_port", r.Listen,
			"target", net.JoinHostPort(d.targetHost, strconv.Itoa(int(r.Target))), "protocols", d.cfg.Forward.Protocols)
	}
	d.disp.Send(publish.Event{Ports: l.PublicPorts(), Reason: "port"})
	d.broker.Publish("port", d.Status().Port)
	if err := d.store.Save("lease", savedLease{Provider: l.Provider, Ports: l.PublicPorts(), At: time.Now()}); err != nil {
		d.log.Warn("saving the port in the state directory", "err", err)
	}
}

// watchTunnel reports the first handshake quickly, then follows the
// tunnel's health.
func (d *daemon) watchTunnel(ctx context.Context) {
	start := time.Now()
	t := time.NewTicker(20 * time.Millisecond)
	warned := false
	for {
		st, err := d.dev.Stats()
		if err == nil && !st.LastHandshake.IsZero() {
			d.log.Info("handshake complete", "endpoint", st.Endpoint, "after", time.Since(start).Round(time.Millisecond).String())
			d.setTunnel(wg.StateUp)
			break
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !warned && time.Since(start) > 10*time.Second {
			warned = true
			d.log.Warn("no WireGuard handshake yet; is the endpoint reachable and the key accepted by the server?", "endpoint", d.dev.Endpoint().String())
		}
	}
	t.Stop()
	d.dev.Watch(ctx, d.watch, func(s wg.State, st wg.Stats) {
		d.mu.Lock()
		prev := d.tunnel
		lease := d.lease
		d.mu.Unlock()
		switch s {
		case wg.StateDown:
			d.log.Warn("tunnel down: nothing received from the server", "last_handshake", st.LastHandshake.Format(time.RFC3339))
		case wg.StateUp:
			d.log.Info("tunnel up", "last_handshake", st.LastHandshake.Format(time.RFC3339))
		}
		d.setTunnel(s)
		if s == wg.StateUp && prev == wg.StateDown && lease.Held() {
			d.disp.Send(publish.Event{Ports: lease.PublicPorts(), Reason: "reconnect"})
		}
	})
}

func (d *daemon) setTunnel(s wg.State) {
	d.mu.Lock()
	d.tunnel = s
	stopping := d.state == "stopping"
	d.mu.Unlock()
	if !stopping {
		d.setState(string(s))
	}
}

// Status implements api.Source.
func (d *daemon) Status() api.Status {
	d.mu.Lock()
	s := api.Status{State: d.state, Version: version, Since: d.since}
	s.Tunnel.State = string(d.tunnel)
	l := d.lease
	s.Port.Error = d.provErr
	d.mu.Unlock()
	s.Tunnel.Endpoint = d.dev.Endpoint().String()
	for _, a := range d.cfg.WireGuard.Address {
		s.Tunnel.Addresses = append(s.Tunnel.Addresses, a.String())
	}
	if st, err := d.dev.Stats(); err == nil {
		s.Tunnel.LastHandshake, s.Tunnel.RxBytes, s.Tunnel.TxBytes = st.LastHandshake, st.RxBytes, st.TxBytes
	}
	s.Port.Provider = d.cfg.Provider.Name
	s.Port.Ports, s.Port.ListenPorts = []int{}, []int{}
	if l.PublicIP.IsValid() {
		s.Port.PublicIP = l.PublicIP.String()
	}
	for _, p := range l.Ports {
		s.Port.Ports = append(s.Port.Ports, int(p.Public))
		s.Port.ListenPorts = append(s.Port.ListenPorts, int(p.Local))
	}
	if len(s.Port.Ports) > 0 {
		s.Port.Port = s.Port.Ports[0]
	}
	s.Port.Protocols = l.Protocols
	s.Port.Expires, s.Port.LastRenewal = l.Expires, l.Renewed
	bs := d.bridge.Stats()
	s.Forward = api.ForwardStatus{
		Target: d.targetHost, Protocols: d.cfg.Forward.Protocols,
		TCPOpen: bs.TCPOpen, TCPTotal: bs.TCPTotal, TCPRefused: bs.TCPRefused,
		UDPFlows: bs.UDPFlows, UDPPackets: bs.UDPPackets, BytesIn: bs.BytesIn, BytesOut: bs.BytesOut,
	}
	if d.targetPort != 0 {
		s.Forward.Target = net.JoinHostPort(d.targetHost, strconv.Itoa(int(d.targetPort)))
	}
	if d.socksL != nil {
		s.Proxy.SOCKS5 = d.socksL.Addr().String()
	}
	if d.httpL != nil {
		s.Proxy.HTTP = d.httpL.Addr().String()
	}
	if k := d.cfg.KillSwitch; k.Enabled {
		s.KillSwitch = api.KillSwitchStatus{Enabled: true, Lockdown: k.Lockdown, Scope: "namespace"}
		switch {
		case k.OnlyUID != nil:
			s.KillSwitch.Scope = "uid " + strconv.Itoa(*k.OnlyUID)
		case k.OnlyCgroup != "":
			s.KillSwitch.Scope = "cgroup " + k.OnlyCgroup
		}
	}
	s.Publish = d.disp.Results()
	return s
}

// subscribeLease returns a channel that hears every lease report (tests,
// demo).
func (d *daemon) subscribeLease() <-chan provider.Lease {
	ch := make(chan provider.Lease, 16)
	d.mu.Lock()
	d.leaseSub = append(d.leaseSub, ch)
	d.mu.Unlock()
	return ch
}
