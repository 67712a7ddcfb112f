package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParseHostPort reads "HOST", "HOST:PORT" or ":PORT" (for --forward);
// no port (0) means "the same as the forwarded port"; an explicit port 0
// is an error.
func ParseHostPort(s string) (host string, port uint16, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", 0, fmt.Errorf("empty address")
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return "", 0, fmt.Errorf("%q: port must be 0-65535", s)
		}
		if h == "" {
			h = "127.0.0.1"
		}
		if n == 0 {
			return "", 0, fmt.Errorf("%q: port 0 is no port: give the service's port, or leave it out (%s) for the forwarded port", s, h)
		}
		if _, err := netip.ParseAddr(h); err != nil && !isDomain(h) {
			return "", 0, fmt.Errorf("%q: %q is neither an IP address nor a host name", s, h)
		}
		return h, uint16(n), nil
	}
	if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
		return s, 0, nil // bare IPv6
	}
	if strings.Contains(s, ":") {
		return "", 0, fmt.Errorf("%q: want HOST or HOST:PORT", s)
	}
	if _, err := netip.ParseAddr(s); err != nil && !isDomain(s) {
		return "", 0, fmt.Errorf("%q is neither an IP address nor a host name", s)
	}
	return s, 0, nil
}
