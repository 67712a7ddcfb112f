package nft

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// MarkedResolver with servers asks them, whatever /etc/resolv.conf says
// (after --dns-resolv-conf it names vpnfwd's forwarder, behind the tunnel).
func TestMarkedResolverAsksItsServers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SO_MARK needs CAP_NET_ADMIN")
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			r := dnsmessage.Message{Header: dnsmessage.Header{ID: q.ID, Response: true, Authoritative: true}, Questions: q.Questions}
			if q.Questions[0].Type == dnsmessage.TypeA {
				r.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
					Body:   &dnsmessage.AResource{A: [4]byte{198, 51, 100, 7}},
				}}
			}
			out, _ := r.Pack()
			pc.WriteTo(out, from)
		}
	}()
	srv := netip.MustParseAddrPort(pc.LocalAddr().String())
	res := MarkedResolver(WireGuardMark, []netip.AddrPort{srv})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := res.LookupNetIP(ctx, "ip4", "vpn.example.invalid.")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0] != netip.MustParseAddr("198.51.100.7") {
		t.Fatalf("got %v, want [198.51.100.7] from the given server", addrs)
	}
}
