package failover

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// fakeDevice records the tunnels it was put on.
type fakeDevice struct {
	on  []tunnel.WireGuard
	err error
}

func (d *fakeDevice) Reconfigure(_ context.Context, w tunnel.WireGuard) error {
	if d.err != nil {
		return d.err
	}
	d.on = append(d.on, w)
	return nil
}

// fakePlane holds addresses and counts how often they were set.
type fakePlane struct {
	addrs []netip.Prefix
	sets  int
	err   error
}

func (p *fakePlane) Addresses() []netip.Prefix { return p.addrs }
func (p *fakePlane) SetAddresses(a []netip.Prefix) error {
	if p.err != nil {
		return p.err
	}
	p.addrs, p.sets = a, p.sets+1
	return nil
}

// natpmpLike is a provider told of moves (provider.Mover).
type natpmpLike struct{ moved int }

func (*natpmpLike) Run(context.Context, func(provider.Lease)) error { return nil }
func (p *natpmpLike) Moved()                                        { p.moved++ }

// piaLike registers fresh keys (provider.TunnelMaker and Rekeyer).
type piaLike struct {
	next    tunnel.WireGuard
	err     error
	rekeys  int
	tunnels [][]netip.Prefix
}

func (*piaLike) Run(context.Context, func(provider.Lease)) error { return nil }
func (p *piaLike) MakeTunnel(context.Context) (tunnel.WireGuard, error) {
	return p.next, nil
}
func (p *piaLike) SetTunnel(addrs []netip.Prefix, _ []netip.Addr) {
	p.tunnels = append(p.tunnels, addrs)
}
func (p *piaLike) Rekey(context.Context) (tunnel.WireGuard, error) {
	p.rekeys++
	return p.next, p.err
}

func server(name, addr, endpoint string) tunnel.WireGuard {
	return tunnel.WireGuard{Config: "/etc/wg/" + name + ".conf", Address: []tunnel.Prefix{tunnel.Prefix(netip.MustParsePrefix(addr))},
		Peers: []tunnel.Peer{{Endpoint: tunnel.Endpoint(endpoint)}}}
}

func TestNewNeedsSomewhereToGo(t *testing.T) {
	one := []tunnel.WireGuard{server("a", "10.2.0.2/32", "192.0.2.1:51820")}
	if m := New(Config{Caps: provider.CapsOf(&natpmpLike{}), Servers: one}); m != nil {
		t.Errorf("one server, no rekey: a Mover")
	}
	if m := New(Config{Caps: provider.CapsOf(&piaLike{}), Servers: one}); m == nil || !m.Rekeys() {
		t.Errorf("a provider that rekeys: %v", m)
	}
	two := append(one, server("b", "10.2.0.2/32", "192.0.2.2:51820"))
	if m := New(Config{Caps: provider.CapsOf(&natpmpLike{}), Servers: two}); m == nil || m.Rekeys() {
		t.Errorf("two servers: %v", m)
	}
	// A provider that rekeys rekeys, list or not.
	if m := New(Config{Caps: provider.CapsOf(&piaLike{}), Servers: two}); m == nil || !m.Rekeys() {
		t.Errorf("rekeying provider with two servers: %v", m)
	}
}

// Round the list: each move puts the device on the next server, changes
// the addresses only when the new server's differ, tells the provider and
// guards its endpoints again.
func TestNextServerRoundTheList(t *testing.T) {
	servers := []tunnel.WireGuard{
		server("a", "10.2.0.2/32", "192.0.2.1:51820"),
		server("b", "10.2.0.2/32", "192.0.2.2:51820"),
		server("c", "10.9.0.7/32", "192.0.2.3:51820"),
	}
	servers[1].Server = "nl-free-7 (Amsterdam)"
	dev, plane, prov := &fakeDevice{}, &fakePlane{addrs: servers[0].Addresses()}, &natpmpLike{}
	guards := 0
	m := New(Config{Device: dev, Plane: plane, Guard: func(context.Context) { guards++ }, Caps: provider.CapsOf(prov), Servers: servers})
	for i, want := range []struct {
		detail string
		sets   int
	}{
		{"server 2 of 3 (nl-free-7 (Amsterdam)), endpoint 192.0.2.2:51820", 0}, // same address: not set
		{"server 3 of 3 (c.conf), endpoint 192.0.2.3:51820", 1},
		{"server 1 of 3 (a.conf), endpoint 192.0.2.1:51820", 2}, // round the list
	} {
		detail, err := m.Move(t.Context())
		if err != nil {
			t.Fatalf("move %d: %v", i+1, err)
		}
		if detail != want.detail || plane.sets != want.sets || prov.moved != i+1 || guards != i+1 {
			t.Errorf("move %d: %q, addresses set %d times (want %d), provider told %d, guarded %d", i+1, detail, plane.sets, want.sets, prov.moved, guards)
		}
		if got := dev.on[i].Peers[0].Endpoint; got != servers[(i+1)%3].Peers[0].Endpoint {
			t.Errorf("move %d: device on %s", i+1, got)
		}
	}
	if !slices.Equal(plane.addrs, servers[0].Addresses()) {
		t.Errorf("addresses %v", plane.addrs)
	}
}

// A move that fails stays where it was: the next one tries the same
// server again, and the provider hears nothing.
func TestNextServerFails(t *testing.T) {
	servers := []tunnel.WireGuard{server("a", "10.2.0.2/32", "192.0.2.1:51820"), server("b", "10.3.0.2/32", "192.0.2.2:51820")}
	dev, plane, prov := &fakeDevice{err: errors.New("resolving the endpoint: no such host")}, &fakePlane{addrs: servers[0].Addresses()}, &natpmpLike{}
	m := New(Config{Device: dev, Plane: plane, Caps: provider.CapsOf(prov), Servers: servers})
	if _, err := m.Move(t.Context()); err == nil || !strings.Contains(err.Error(), "server 2 of 2 (/etc/wg/b.conf): resolving") {
		t.Errorf("device failure: %v", err)
	}
	dev.err, plane.err = nil, errors.New("address in use")
	if _, err := m.Move(t.Context()); err == nil || plane.err.Error() != err.Error() {
		t.Errorf("plane failure: %v", err)
	}
	if prov.moved != 0 {
		t.Errorf("provider told of %d failed moves", prov.moved)
	}
	plane.err = nil
	if detail, err := m.Move(t.Context()); err != nil || !strings.HasPrefix(detail, "server 2 of 2") || prov.moved != 1 {
		t.Errorf("after the failures: %q, %v; provider told %d", detail, err, prov.moved)
	}
}

// Rekey: the provider's fresh tunnel goes to the device, its addresses
// to the data plane (always) and back to the provider.
func TestRekey(t *testing.T) {
	fresh := server("pia", "10.13.0.9/32", "198.51.100.4:1337")
	dev, plane, prov := &fakeDevice{}, &fakePlane{}, &piaLike{next: fresh}
	guards := 0
	m := New(Config{Device: dev, Plane: plane, Guard: func(context.Context) { guards++ }, Caps: provider.CapsOf(prov)})
	detail, err := m.Move(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if detail != "endpoint 198.51.100.4:1337, address 10.13.0.9/32" {
		t.Errorf("detail %q", detail)
	}
	if prov.rekeys != 1 || len(dev.on) != 1 || plane.sets != 1 || len(prov.tunnels) != 1 || !slices.Equal(prov.tunnels[0], fresh.Addresses()) || guards != 1 {
		t.Errorf("rekeys %d, device moves %d, addresses set %d, provider told %v, guarded %d", prov.rekeys, len(dev.on), plane.sets, prov.tunnels, guards)
	}
	// The same addresses are set again (the provider's new key may come
	// with them), as before.
	if _, err := m.Move(t.Context()); err != nil || plane.sets != 2 {
		t.Errorf("second rekey: %v, addresses set %d times", err, plane.sets)
	}
	// A failed registration moves nothing.
	prov.err = errors.New("PIA refused the key")
	if _, err := m.Move(t.Context()); !errors.Is(err, prov.err) || len(dev.on) != 2 || plane.sets != 2 || len(prov.tunnels) != 2 {
		t.Errorf("failed rekey: %v; device moves %d, addresses set %d", err, len(dev.on), plane.sets)
	}
	prov.err, dev.err = nil, errors.New("device closed")
	if _, err := m.Move(t.Context()); !errors.Is(err, dev.err) || plane.sets != 2 || len(prov.tunnels) != 2 {
		t.Errorf("device failure: %v; addresses set %d, provider told %d", err, plane.sets, len(prov.tunnels))
	}
}

func TestServerAt(t *testing.T) {
	servers := []tunnel.WireGuard{server("a", "10.2.0.2/32", "192.0.2.1:51820"), server("b", "10.2.0.2/32", "192.0.2.2:51820")}
	servers[1].Server = "se-3 (Stockholm)"
	for _, c := range []struct{ ep, want string }{
		{"192.0.2.2:51820", "se-3 (Stockholm)"},
		{"192.0.2.1:51820", ""}, // a wg-quick file, not a server list's
		{"192.0.2.2:51821", ""},
	} {
		if got := ServerAt(servers, netip.MustParseAddrPort(c.ep)); got != c.want {
			t.Errorf("ServerAt(%s) = %q, want %q", c.ep, got, c.want)
		}
	}
}
