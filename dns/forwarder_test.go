package dns_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/dns"
	"golang.org/x/net/dns/dnsmessage"
)

// forwarder serves on loopback, asking the in-process VPN's DNS server
// through a real tunnel, after the given upstreams (dead ones, say).
func forwarder(t *testing.T, first ...netip.Addr) (udp, tcp string) {
	t.Helper()
	return serve(t, append(first, demo.GatewayAddr))
}

// serve runs a forwarder with exactly these upstreams.
func serve(t *testing.T, upstreams []netip.Addr) (udp, tcp string) {
	t.Helper()
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// 1 s a try: short enough for the dead-server tests, long enough for
	// the in-process upstream on a loaded machine (300 ms gave SERVFAIL).
	f := &dns.Forwarder{Upstreams: upstreams, Dialer: c.Stack, Timeout: time.Second}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { f.ServeUDP(ctx, pc); done <- struct{}{} }()
	go func() { f.ServeTCP(ctx, l); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("forwarder did not stop")
			}
		}
	})
	return pc.LocalAddr().String(), l.Addr().String()
}

func query(t *testing.T, name string, edns bool) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	if edns {
		b.StartAdditionals()
		var rh dnsmessage.ResourceHeader
		rh.SetEDNS0(4096, dnsmessage.RCodeSuccess, false)
		b.OPTResource(rh, dnsmessage.OPTResource{})
	}
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func parse(t *testing.T, a []byte) (dnsmessage.Header, []dnsmessage.Resource) {
	t.Helper()
	var p dnsmessage.Parser
	h, err := p.Start(a)
	if err != nil {
		t.Fatalf("answer %x: %v", a, err)
	}
	p.SkipAllQuestions()
	rs, _ := p.AllAnswers()
	return h, rs
}

func udpExchange(t *testing.T, addr string, q []byte) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(q)
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no UDP answer: %v", err)
	}
	return buf[:n]
}

func tcpExchange(t *testing.T, addr string, q []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatalf("no TCP answer: %v", err)
	}
	a := make([]byte, binary.BigEndian.Uint16(l[:]))
	io.ReadFull(c, a)
	return a
}

func TestForwarderUDPAndTCP(t *testing.T) {
	udp, tcp := forwarder(t)
	for _, a := range [][]byte{udpExchange(t, udp, query(t, demo.WhatsMyIPName, false)), tcpExchange(t, tcp, query(t, demo.WhatsMyIPName, true))} {
		h, rs := parse(t, a)
		if h.ID != 4242 || h.RCode != dnsmessage.RCodeSuccess || len(rs) != 1 {
			t.Fatalf("answer %+v %+v", h, rs)
		}
		if got := netip.AddrFrom4(rs[0].Body.(*dnsmessage.AResource).A); got != demo.InternetHost {
			t.Errorf("resolved to %s", got)
		}
	}
	// An unknown name: the server's NXDOMAIN comes back as it is.
	if h, _ := parse(t, udpExchange(t, udp, query(t, "nope.test", false))); h.RCode != dnsmessage.RCodeNameError {
		t.Errorf("rcode %v", h.RCode)
	}
}

// A large answer: truncated (TC) to a UDP client, which then asks over TCP
// and gets it whole, fetched over TCP through the tunnel.
func TestForwarderTruncation(t *testing.T) {
	udp, tcp := forwarder(t)
	h, rs := parse(t, udpExchange(t, udp, query(t, demo.BigName, false)))
	if !h.Truncated || len(rs) != 0 {
		t.Errorf("over UDP: truncated %v with %d answers", h.Truncated, len(rs))
	}
	h, rs = parse(t, tcpExchange(t, tcp, query(t, demo.BigName, false)))
	if h.Truncated || len(rs) != 60 {
		t.Errorf("over TCP: truncated %v with %d answers, want 60", h.Truncated, len(rs))
	}
}

// A dead first server: the next one answers, within the timeouts.
func TestForwarderRetriesNextServer(t *testing.T) {
	udp, _ := forwarder(t, netip.MustParseAddr("10.2.0.77"))
	start := time.Now()
	h, rs := parse(t, udpExchange(t, udp, query(t, demo.EchoName, false)))
	if h.RCode != dnsmessage.RCodeSuccess || len(rs) != 1 {
		t.Errorf("answer %+v", h)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s", took)
	}
}

// Garbage gets no answer; a query nobody answers gets SERVFAIL.
func TestForwarderGarbageAndServfail(t *testing.T) {
	udp, _ := forwarder(t)
	c, _ := net.Dial("udp", udp)
	defer c.Close()
	c.Write([]byte("not dns at all"))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 100)); err == nil {
		t.Error("garbage was answered")
	}
	dead, _ := serve(t, []netip.Addr{netip.MustParseAddr("10.2.0.77")})
	if h, _ := parse(t, udpExchange(t, dead, query(t, demo.EchoName, false))); h.RCode != dnsmessage.RCodeServerFailure || h.ID != 4242 {
		t.Errorf("no upstream answered: %+v", h)
	}
}
