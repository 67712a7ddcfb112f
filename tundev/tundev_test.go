package tundev

import (
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// The pure parts of the device's routing, without root (the device itself
// is tested as root in internal/rootnet).
func TestRoutingHelpers(t *testing.T) {
	ps := []netip.Prefix{netip.MustParsePrefix("10.2.0.2/32"), netip.MustParsePrefix("fd00::2/128"), netip.MustParsePrefix("0.0.0.0/0")}
	if got := only4(ps); len(got) != 2 || got[0] != ps[0] || got[1] != ps[2] {
		t.Errorf("only4: %v", got)
	}
	if n := ipNet(ps[1]); n.String() != "fd00::2/128" {
		t.Errorf("ipNet: %s", n)
	}
	if n := ipNet(ps[2]); n.String() != "0.0.0.0/0" {
		t.Errorf("ipNet: %s", n)
	}
	if family(ps[0].Addr()) != netlink.FAMILY_V4 || family(ps[1].Addr()) != netlink.FAMILY_V6 {
		t.Error("family")
	}
}

// Without the device, the sockets' helpers say what is missing.
func TestNoAddress(t *testing.T) {
	d := &Device{name: "vpnfwd0", addrs: []netip.Prefix{netip.MustParsePrefix("fd00::2/128")}}
	if _, err := d.addr4(); err == nil {
		t.Error("addr4 of an IPv6-only tunnel")
	}
	d.addrs = append(d.addrs, netip.MustParsePrefix("10.2.0.2/32"))
	if a, err := d.addr4(); err != nil || a.String() != "10.2.0.2" {
		t.Errorf("addr4: %v %v", a, err)
	}
}
