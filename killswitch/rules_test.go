package killswitch

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables/expr"

	"github.com/vpnfwd/vpnfwd/nft"
)

func comments(rs []rule) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.comment)
	}
	return strings.Join(s, "\n")
}

func TestOutputRules(t *testing.T) {
	c := Config{Mark: DefaultMark, AllowLAN: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("fd00::/8")}}
	got := comments(outputRules(c))
	// Order matters: Docker's resolver before loopback; DNS, NAT-PMP and
	// SSDP before the LAN (vpnfwd's own answers on loopback before all).
	order := []string{"vpnfwd's own lookups through Docker's DNS", "Docker's embedded DNS", "loopback",
		"NAT-PMP/PCP requests answered by vpnfwd on loopback", "SSDP answered by vpnfwd's UPnP IGD on loopback", "the WireGuard endpoint",
		"vpnfwd's own lookups of the endpoint name", "DNS outside the tunnel (port 53)", "DNS outside the tunnel (port 853)",
		"NAT-PMP/PCP to a router outside the tunnel", "SSDP (UPnP discovery) outside the tunnel",
		"allow_lan 192.168.1.0/24", "allow_lan fd00::/8", "DHCP, broadcast only", "neighbour discovery, link-local and multicast only", "dropped by the kill switch"}
	at := 0
	for _, want := range order {
		i := strings.Index(got[at:], want)
		if i < 0 {
			t.Fatalf("output rules lack %q after position %d:\n%s", want, at, got)
		}
		at += i
	}
	if strings.Contains(got, "tunnel interface") {
		t.Error("no tunnel interface in the netstack data plane")
	}
	c.Tunnel = "vpnfwd0"
	if got := comments(outputRules(c)); !strings.Contains(got, "loopback\ntunnel interface vpnfwd0\nthe WireGuard endpoint") {
		t.Errorf("tun mode: the tunnel's interface right after loopback, before the DNS drops:\n%s", got)
	}
	if got := comments(inputRules(c)); !strings.Contains(got, "tunnel interface vpnfwd0") {
		t.Errorf("tun mode: peers must come in through the tunnel:\n%s", got)
	}
	c.Tunnel = ""
	if strings.Contains(got, "only_uid") || strings.Contains(got, "not confined") {
		t.Error("namespace scope should not exempt anyone")
	}
	uid := uint32(1000)
	c.OnlyUID = &uid
	if got := comments(scopeRules(c)); !strings.Contains(got, "only_uid: this user is confined") || !strings.Contains(got, "others are not confined") {
		t.Errorf("only_uid not applied:\n%s", got)
	}
}

func TestEndpointRuleMatchesMarkAddressPort(t *testing.T) {
	r := endpointRule(0x7670, netip.MustParseAddrPort("203.0.113.9:51820"))
	var sawMark, sawAddr, sawPort bool
	for _, e := range r.exprs {
		if c, ok := e.(*expr.Cmp); ok {
			switch string(c.Data) {
			case string(nft.U32(0x7670)):
				sawMark = true
			case string([]byte{203, 0, 113, 9}):
				sawAddr = true
			case string(nft.BE16(51820)):
				sawPort = true
			}
		}
	}
	if !sawMark || !sawAddr || !sawPort {
		t.Errorf("endpoint rule must match mark, address and port: %v %v %v", sawMark, sawAddr, sawPort)
	}
}

func TestPrefixMask(t *testing.T) {
	es := nft.Addr(netip.MustParsePrefix("10.1.0.0/16"), false)
	var bw *expr.Bitwise
	for _, e := range es {
		if b, ok := e.(*expr.Bitwise); ok {
			bw = b
		}
	}
	if bw == nil || string(bw.Mask) != string([]byte{255, 255, 0, 0}) {
		t.Fatalf("mask %+v", bw)
	}
	if last := es[len(es)-1].(*expr.Cmp); string(last.Data) != string([]byte{10, 1, 0, 0}) {
		t.Errorf("compare %v", last.Data)
	}
}
