package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vpnfwd/vpnfwd/dns"
)

// resolvConf is the file --dns-resolv-conf points at the forwarder.
const resolvConf = "/etc/resolv.conf"

// dnsSockets opens the forwarder's UDP and TCP sockets on dns.listen (nil
// when off), before anything else starts, so a busy port fails fast.
func (d *daemon) dnsSockets() error {
	addr := d.cfg.DNS.Listen
	if addr == "" {
		return nil
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("DNS forwarder on %s: %w (choose another with --dns-listen ADDR; port 53 needs root or CAP_NET_BIND_SERVICE)", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("DNS forwarder on %s (TCP): %w", addr, err)
	}
	d.dnsUDP, d.dnsTCP = pc, l
	return nil
}

// serveDNS runs the forwarder until ctx ends; goFunc owns its goroutines.
func (d *daemon) serveDNS(ctx context.Context, goFunc func(func())) {
	if d.dnsUDP == nil {
		return
	}
	f := &dns.Forwarder{Upstreams: d.cfg.WireGuard.DNSServers(), Dialer: d.plane, Log: d.log.With("component", "dns")}
	goFunc(func() { f.ServeUDP(ctx, d.dnsUDP) })
	goFunc(func() { f.ServeTCP(ctx, d.dnsTCP) })
	d.log.Info("DNS forwarder listening", "addr", d.dnsUDP.LocalAddr().String(), "upstreams", fmt.Sprint(f.Upstreams))
	if len(f.Upstreams) == 0 {
		d.log.Warn("the WireGuard configuration names no DNS server: the DNS forwarder answers SERVFAIL")
	}
	if d.cfg.DNS.ResolvConf {
		if err := d.pointResolvConf(); err != nil {
			d.log.Error("pointing /etc/resolv.conf at the DNS forwarder", "err", err)
		}
	}
}

// pointResolvConf writes a resolv.conf naming the forwarder, in place (in
// a container the file is a bind mount: it cannot be replaced), keeping
// the old contents to put back at exit.
func (d *daemon) pointResolvConf() error {
	old, err := os.ReadFile(resolvConf)
	if err != nil {
		return err
	}
	ap, _ := netip.ParseAddrPort(d.cfg.DNS.Listen)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# written by vpnfwd while it runs (--dns-resolv-conf); the old file comes back at exit\nnameserver %s\n", ap.Addr())
	if err := os.WriteFile(resolvConf, b.Bytes(), 0o644); err != nil {
		return err
	}
	d.oldResolvConf = old
	d.log.Info("resolv.conf points at the DNS forwarder", "file", resolvConf)
	return nil
}

// restoreResolvConf puts the old resolv.conf back.
func (d *daemon) restoreResolvConf() {
	if d.oldResolvConf == nil {
		return
	}
	if err := os.WriteFile(resolvConf, d.oldResolvConf, 0o644); err != nil {
		d.log.Error("restoring /etc/resolv.conf", "err", err)
		return
	}
	d.oldResolvConf = nil
}
