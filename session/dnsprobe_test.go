package session_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/session"
)

// The DNS check through a real tunnel: an answer proves the tunnel works;
// silence does not.
func TestDNSProbe(t *testing.T) {
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Device.Close()
	check := func(server string, wantOK bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		probe := session.DNSProbe(c.Stack, mustAddr(server))
		var err error
		for try := 0; try < 3; try++ { // the first packet may wait for the handshake
			if err = probe(ctx); err == nil || !wantOK {
				break
			}
		}
		if (err == nil) != wantOK {
			t.Errorf("DNS check of %s: %v, want ok=%v", server, err, wantOK)
		}
	}
	check(demo.GatewayAddr.String(), true) // a DNS server answers
	// Nothing answers at all: the server forgets the client, so the query
	// gets no reply and no ICMP either. (An address the server's
	// promiscuous stack does not serve is no silence: it may answer with
	// an ICMP refusal, which rightly counts as the tunnel working; CI once
	// saw that for 10.2.0.77.)
	if err := srv.Device.RemovePeer(c.Config.PrivateKey.Public()); err != nil {
		t.Fatal(err)
	}
	check(demo.GatewayAddr.String(), false)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
