package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Prefix is an address with prefix length; a bare address means a host
// route (/32 or /128).
type Prefix netip.Prefix

// ParsePrefix reads "10.2.0.2/32", "fd00::2/128" or a bare address.
func ParsePrefix(s string) (Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		return Prefix(netip.PrefixFrom(a, a.BitLen())), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	return Prefix(p), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Prefix) UnmarshalText(b []byte) (err error) { *p, err = ParsePrefix(string(b)); return }
func (p Prefix) MarshalText() ([]byte, error)        { return []byte(p.String()), nil }
func (p Prefix) String() string                      { return netip.Prefix(p).String() }

// Addr is an IP address usable as a TOML string.
type Addr netip.Addr

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Addr) UnmarshalText(b []byte) error {
	ip, err := netip.ParseAddr(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%q is not an IP address", b)
	}
	*a = Addr(ip)
	return nil
}
func (a Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }
func (a Addr) String() string               { return netip.Addr(a).String() }

// Endpoint is a peer's host:port; the host may be a name, resolved when the
// tunnel starts and again when handshakes stop.
type Endpoint string

// ParseEndpoint checks that s is host:port with a valid port.
func ParseEndpoint(s string) (Endpoint, error) {
	s = strings.TrimSpace(s)
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: want host:port (an IPv6 address goes in brackets)", s)
	}
	if host == "" {
		return "", fmt.Errorf("endpoint %q has no host", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("endpoint %q: port must be 1-65535", s)
	}
	return Endpoint(s), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (e *Endpoint) UnmarshalText(b []byte) (err error) { *e, err = ParseEndpoint(string(b)); return }

// HostPort splits the endpoint.
func (e Endpoint) HostPort() (string, uint16) {
	h, p, _ := net.SplitHostPort(string(e))
	n, _ := strconv.ParseUint(p, 10, 16)
	return h, uint16(n)
}
