package dns

import (
	"net/netip"
	"strings"
)

// Nameservers are the addresses of a resolv.conf's nameserver lines.
func Nameservers(resolvConf []byte) []netip.Addr {
	var out []netip.Addr
	for _, l := range strings.Split(string(resolvConf), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, a)
		}
	}
	return out
}
