package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vpnfwd/vpnfwd/dns"
)

// resolvConf is the file --dns-resolv-conf points at the forwarder.
var resolvConf = "/etc/resolv.conf" // a variable for tests

// dnsSockets opens the forwarder's UDP and TCP sockets on dns.listen (nil
// when off), before anything else starts, so a busy port fails fast.
func (d *Daemon) dnsSockets() error {
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
func (d *Daemon) serveDNS(ctx context.Context, goFunc func(func())) {
	if d.dnsUDP == nil {
		return
	}
	f := &dns.Forwarder{Upstreams: d.cfg.WireGuard.DNSServers(), Dialer: d.plane, Log: d.log.With("component", "dns")}
	for _, a := range d.cfg.DNS.Allow {
		if p, err := netip.ParsePrefix(a); err == nil { // checked by config
			f.Allow = append(f.Allow, p.Masked())
		}
	}
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

// resolvMarker begins the resolv.conf that --dns-resolv-conf writes.
const resolvMarker = "# written by vpnfwd"

// savedResolvConf keeps the replaced resolv.conf in the state directory,
// so that a vpnfwd killed before it could put the file back is undone by
// the next one.
func (d *Daemon) savedResolvConf() string {
	return filepath.Join(d.cfg.StateDir, "resolv.conf.orig")
}

// originalResolvConf is /etc/resolv.conf as it was before any vpnfwd
// pointed it at its forwarder.
func (d *Daemon) originalResolvConf() ([]byte, error) {
	cur, err := os.ReadFile(resolvConf)
	if err != nil || !bytes.HasPrefix(cur, []byte(resolvMarker)) {
		return cur, err
	}
	if saved, err := os.ReadFile(d.savedResolvConf()); err == nil {
		return saved, nil
	}
	return cur, nil
}

// systemNameservers are the name servers for vpnfwd's own lookups around
// the tunnel (the endpoint's name) when --dns-resolv-conf is on: those of
// the original resolv.conf. nil: the resolver reads the file itself.
func (d *Daemon) systemNameservers() []netip.AddrPort {
	if !d.cfg.DNS.ResolvConf {
		return nil
	}
	orig, err := d.originalResolvConf()
	if err != nil {
		return nil
	}
	listen, _ := netip.ParseAddrPort(d.cfg.DNS.Listen)
	var out []netip.AddrPort
	for _, a := range dns.Nameservers(orig) {
		if a != listen.Addr() {
			out = append(out, netip.AddrPortFrom(a, 53))
		}
	}
	return out
}

// pointResolvConf writes a resolv.conf naming the forwarder, in place (in
// a container the file is a bind mount: it cannot be replaced), keeping
// the old contents to put back at exit (in memory and in the state
// directory).
func (d *Daemon) pointResolvConf() error {
	old, err := d.originalResolvConf()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err == nil {
		if err := os.WriteFile(d.savedResolvConf(), old, 0o600); err != nil {
			d.log.Warn("saving the old resolv.conf", "err", err)
		}
	}
	ap, _ := netip.ParseAddrPort(d.cfg.DNS.Listen)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s while it runs (--dns-resolv-conf); the old file comes back at exit\nnameserver %s\n", resolvMarker, ap.Addr())
	if err := os.WriteFile(resolvConf, b.Bytes(), 0o644); err != nil {
		return err
	}
	d.oldResolvConf = old
	d.log.Info("resolv.conf points at the DNS forwarder", "file", resolvConf)
	return nil
}

// restoreResolvConf puts the old resolv.conf back.
func (d *Daemon) restoreResolvConf() {
	if d.oldResolvConf == nil {
		return
	}
	if err := os.WriteFile(resolvConf, d.oldResolvConf, 0o644); err != nil {
		d.log.Error("restoring /etc/resolv.conf", "err", err)
		return
	}
	os.Remove(d.savedResolvConf())
	d.oldResolvConf = nil
}
