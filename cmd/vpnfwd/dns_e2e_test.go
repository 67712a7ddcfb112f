package main

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/vpnfwd/vpnfwd/demo"
)

// --dns-listen: names resolve through the tunnel's DNS server for any app
// that uses plain DNS (a kill-switched namespace has no other way).
func TestUpDNSForwarder(t *testing.T) {
	srv, err := demo.Start(demo.Options{NATPMP: "generic"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	in := startUp(t, srv, "--provider", "natpmp", "--dns-listen", "127.0.0.1:0")
	in.waitPort(t)
	addr := in.status(t).DNS
	if addr == "" {
		t.Fatal("status shows no DNS forwarder")
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(demo.WhatsMyIPName + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(q)
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer from the forwarder: %v\n%s", err, in.log)
	}
	var p dnsmessage.Parser
	if _, err := p.Start(buf[:n]); err != nil {
		t.Fatal(err)
	}
	p.SkipAllQuestions()
	rs, _ := p.AllAnswers()
	if len(rs) != 1 || netip.AddrFrom4(rs[0].Body.(*dnsmessage.AResource).A) != demo.InternetHost {
		t.Errorf("answers %+v", rs)
	}
}
