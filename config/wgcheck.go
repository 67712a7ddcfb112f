package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

// The tunnel's addresses are checked for what they are used as: a value
// that parses but cannot be what it stands for (a server at 0.0.0.0, a
// tunnel address on loopback, a DNS server that is vpnfwd's own
// responder) is refused at start with the fix, not met later as a
// confusing failure.

// notUnicast names why a is no host's address ("" when it is one):
// unspecified, broadcast or multicast.
func notUnicast(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return "the unspecified address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	case a.IsMulticast():
		return "a multicast address"
	}
	return ""
}

// checkEndpoint refuses a peer's Endpoint whose host is an address no
// server has.
func checkEndpoint(e tunnel.Endpoint) error {
	host, _ := e.HostPort()
	a, err := netip.ParseAddr(host)
	if err != nil {
		return nil // a name, looked up when the tunnel starts
	}
	if why := notUnicast(a); why != "" {
		return fmt.Errorf("%s: %s is %s, no server's: give the VPN server's address or name from your provider's config (e.g. 203.0.113.7:51820)", e, host, why)
	}
	return nil
}

// checkAddress refuses an Interface Address that cannot be this end of
// the tunnel.
func checkAddress(p tunnel.Prefix) error {
	pr := netip.Prefix(p)
	a := pr.Addr()
	why := notUnicast(a)
	switch {
	case why != "":
	case a.Unmap().IsLoopback():
		why = "a loopback address"
	case pr.Bits() == 0:
		return fmt.Errorf("%s: a /0 claims every address as this host's: write your tunnel address with /32 (IPv6: /128), e.g. 10.2.0.2/32", pr)
	default:
		return nil
	}
	return fmt.Errorf("%s: %s is %s, not your address in the tunnel: give the Address line of your provider's config (e.g. 10.2.0.2/32)", pr, a, why)
}

// checkDNS refuses a DNS server that is not a server in the tunnel: the
// forwarder asks it through the tunnel, and the first IPv4 one is the
// NAT-PMP gateway unless --gateway names another (127.0.0.1 would be
// vpnfwd's own responder).
func checkDNS(a netip.Addr) error {
	why := notUnicast(a)
	if why == "" && a.Unmap().IsLoopback() {
		why = "a loopback address"
	}
	if why != "" {
		return fmt.Errorf("%s is %s, not a DNS server in the tunnel (the first is also the NAT-PMP gateway): give your provider's, e.g. DNS = 10.2.0.1, or leave the line out and give --gateway", a, why)
	}
	return nil
}

// isDomain reports whether s is a host or domain name: dot-separated
// labels of letters, digits, '-' and '_' (1 to 63 each, not starting or
// ending with '-'), at most 253 characters, the last label not all
// digits (so a mistyped address is not taken for a name).
func isDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// checkTunnelValues applies the checks above to a tunnel given inline
// (TOML [wireguard], gluetun's WIREGUARD_* variables), and refuses two
// peers with one key (WireGuard would merge them into one).
func checkTunnelValues(w *tunnel.WireGuard) error {
	var errs []error
	for _, p := range w.Address {
		if err := checkAddress(p); err != nil {
			errs = append(errs, fmt.Errorf("address %w", err))
		}
	}
	for _, d := range w.DNS {
		if err := checkDNS(netip.Addr(d)); err != nil {
			errs = append(errs, fmt.Errorf("dns %w", err))
		}
	}
	seen := map[tunnel.Key]int{}
	for i, p := range w.Peers {
		if p.Endpoint != "" {
			if err := checkEndpoint(p.Endpoint); err != nil {
				errs = append(errs, fmt.Errorf("peer %d: endpoint %w", i+1, err))
			}
		}
		if j, ok := seen[p.PublicKey]; ok && !p.PublicKey.IsZero() {
			errs = append(errs, fmt.Errorf("peer %d has peer %d's public key %s: WireGuard would merge them into one; keep one [Peer] per server", i+1, j, p.PublicKey))
		}
		seen[p.PublicKey] = i + 1
	}
	return errors.Join(errs...)
}
