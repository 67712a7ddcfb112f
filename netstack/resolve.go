package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// lookup turns host into addresses, using the tunnel's DNS servers only.
func (s *Stack) lookup(ctx context.Context, host, network string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, err := s.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		if a.Is4() || a.Is4In6() {
			v4 = append(v4, a.Unmap())
		} else {
			v6 = append(v6, a)
		}
	}
	has6 := false
	for _, p := range s.Addresses() {
		has6 = has6 || p.Addr().Is6()
	}
	switch {
	case strings.HasSuffix(network, "4"):
		v6 = nil
	case strings.HasSuffix(network, "6"):
		v4 = nil
	case !has6:
		v6 = nil
	}
	out := append(v4, v6...)
	if len(out) == 0 {
		return nil, fmt.Errorf("resolving %s through the tunnel: no usable address", host)
	}
	return out, nil
}

// Resolve looks host up with the tunnel's DNS servers, through the tunnel.
func (s *Stack) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if len(s.cfg.DNS) == 0 {
		return nil, fmt.Errorf("resolving %s: the tunnel has no DNS server (set DNS in the WireGuard config)", host)
	}
	var lastErr error
	for _, server := range s.cfg.DNS {
		r := &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return s.DialAddr(ctx, network, netip.AddrPortFrom(server, 53))
			},
		}
		ips, err := r.LookupNetIP(ctx, "ip", host)
		if err == nil {
			return ips, nil
		}
		lastErr = err
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			break
		}
	}
	return nil, fmt.Errorf("resolving %s through the tunnel: %w", host, lastErr)
}
