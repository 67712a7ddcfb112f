package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ParseHostPort reads "HOST", "HOST:PORT" or ":PORT" (for --forward);
// port 0 means "the same as the forwarded port".
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
		return h, uint16(n), nil
	}
	if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
		return s, 0, nil // bare IPv6
	}
	if strings.Contains(s, ":") {
		return "", 0, fmt.Errorf("%q: want HOST or HOST:PORT", s)
	}
	return s, 0, nil
}
