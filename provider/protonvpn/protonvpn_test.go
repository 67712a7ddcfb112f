package protonvpn_test

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/protonvpn"
)

// Proton's provider with no setting asks Proton's in-tunnel gateway
// (10.2.0.1) and gets a port there: the in-process server answers on
// Proton's addressing, as Proton's servers do.
func TestMapsOnProtonsGateway(t *testing.T) {
	if demo.GatewayAddr != netip.MustParseAddr(protonvpn.Gateway) {
		t.Fatalf("the demo's gateway %s is not Proton's %s", demo.GatewayAddr, protonvpn.Gateway)
	}
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := protonvpn.Info.New(provider.Env{Dialer: c.Stack, Log: slog.New(slog.DiscardHandler), DNS: c.Config.DNSServers(), Settings: provider.Settings{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	leases := make(chan provider.Lease, 10)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func(l provider.Lease) { leases <- l }) }()
	defer func() { cancel(); <-done }()
	select {
	case l := <-leases:
		if !l.Held() || l.Error != "" || l.Provider != "protonvpn" || len(l.Ports) != 1 {
			t.Errorf("lease %+v", l)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no lease from Proton's gateway")
	}
}

// What a refusal tells the user: the key was made without NAT-PMP, or
// the server is not a P2P one, and where to make a new one.
func TestRefusedSaysWhatToDo(t *testing.T) {
	msg := protonvpn.Conventions.Refused(netip.MustParseAddrPort("10.2.0.1:5351"))
	for _, want := range []string{"10.2.0.1:5351", "NAT-PMP (Port Forwarding)", "P2P", "account.protonvpn.com"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if protonvpn.Conventions.RenewEvery != 45*time.Second || protonvpn.Conventions.DefaultLifetime != 60*time.Second {
		t.Errorf("renewal %s of %s, want Proton client's 45 s of 60 s", protonvpn.Conventions.RenewEvery, protonvpn.Conventions.DefaultLifetime)
	}
}
