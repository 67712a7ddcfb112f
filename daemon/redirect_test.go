package daemon

import (
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/status"
)

// kernelPorts is tun mode's (or exec's) port path without a kernel: the
// redirects go to put, the responder's table is a real portmap.Server.
type kernelPorts struct {
	ports
	puts [][]nft.PortRedirect  // what each put was given
	apps [][]status.AppMapping // what the API heard
	r    *redirects
}

func newKernelPorts(t target) *kernelPorts {
	k := &kernelPorts{}
	log := slog.New(slog.DiscardHandler)
	k.r = &redirects{target: t, log: log, remove: true, put: func(rs []nft.PortRedirect) error {
		k.puts = append(k.puts, rs)
		return nil
	}}
	k.ports = ports{target: t, path: k.r, onApps: func(ms []status.AppMapping) { k.apps = append(k.apps, ms) }}
	k.resp = &responder{log: log, target: t, publicIP: func() netip.Addr { return netip.Addr{} },
		pmp: portmap.New(portmap.Config{Log: log, Changed: k.appsChanged})}
	return k
}

func lease(public, local uint16) provider.Lease {
	return provider.Lease{Provider: "test", PublicIP: netip.MustParseAddr("198.51.100.9"), Ports: []provider.Port{{Public: public, Local: local}}}
}

// TestRedirectsFollowTheLeaseAndTheApps: each step puts the redirects
// in at most once, with the mappings the responder handed in.
func TestRedirectsFollowTheLeaseAndTheApps(t *testing.T) {
	k := newKernelPorts(target{host: "0.0.0.0", protocols: []string{"tcp", "udp"}})
	step := func(name string, f func(), want ...[]nft.PortRedirect) {
		t.Helper()
		k.puts = nil
		f()
		if !slices.EqualFunc(k.puts, want, slices.Equal) {
			t.Errorf("%s: put %v, want %v", name, k.puts, want)
		}
	}
	step("the service on the public port, delivered to another", func() { k.ApplyPorts(lease(5000, 4000)) },
		[]nft.PortRedirect{{Proto: "tcp", From: 4000, To: 5000}, {Proto: "udp", From: 4000, To: 5000}})
	step("a renewal", func() { k.ApplyPorts(lease(5000, 4000)) })
	step("an app asks for the held port", func() {
		if _, err := k.resp.pmp.MapIGD(portmap.IGDRequest{Proto: "tcp", Internal: 7000, External: 5000,
			Owner: portmap.IGDOwner{Addr: netip.MustParseAddr("127.0.0.1")}}); err != nil {
			t.Fatal(err)
		}
	}, []nft.PortRedirect{{Proto: "tcp", From: 4000, To: 7000}})
	if len(k.apps) != 1 || len(k.apps[0]) != 1 || k.apps[0][0].InternalPort != 7000 || k.apps[0][0].PublicPort != 5000 {
		t.Errorf("the API heard %+v", k.apps)
	}
	// The provider moves the slot: the app's mapping follows it (the
	// responder hands the new mapping in), in one put.
	step("the port moves", func() { k.ApplyPorts(lease(5001, 4001)) },
		[]nft.PortRedirect{{Proto: "tcp", From: 4001, To: 7000}})
	step("the port is lost: the redirects wait", func() { k.ApplyPorts(provider.Lease{Provider: "test"}) })
	step("close", k.close, nil)
	step("close again", k.close)
}

// TestResponderOffersTakenPorts: with a --forward port the responder
// offers the held ports as taken (no app can have them), and they are
// redirected to that port.
func TestResponderOffersTakenPorts(t *testing.T) {
	k := newKernelPorts(target{host: "0.0.0.0", port: 7000, protocols: []string{"tcp"}})
	k.ApplyPorts(lease(5000, 4000))
	if _, err := k.resp.pmp.MapIGD(portmap.IGDRequest{Proto: "tcp", Internal: 8000, External: 5000,
		Owner: portmap.IGDOwner{Addr: netip.MustParseAddr("127.0.0.1")}}); err == nil {
		t.Errorf("an app got the port --forward sends to 7000")
	}
	if want := [][]nft.PortRedirect{{{Proto: "tcp", From: 4000, To: 7000}}}; !slices.EqualFunc(k.puts, want, slices.Equal) {
		t.Errorf("put %v, want %v", k.puts, want)
	}
}
