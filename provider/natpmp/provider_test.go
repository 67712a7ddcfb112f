package natpmp_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/natpmp"
	"github.com/vpnfwd/vpnfwd/provider/protonvpn"
)

// setup starts a test server with the given NAT-PMP mode and a client.
func setup(t *testing.T, mode string, life uint32) (*demo.Server, *demo.Client) {
	t.Helper()
	srv, err := demo.Start(demo.Options{NATPMP: mode, Lifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// leases collects what a provider reports.
type leases struct {
	mu  sync.Mutex
	all []provider.Lease
	ch  chan provider.Lease
}

func newLeases() *leases { return &leases{ch: make(chan provider.Lease, 100)} }

func (l *leases) report(x provider.Lease) {
	l.mu.Lock()
	l.all = append(l.all, x)
	l.mu.Unlock()
	l.ch <- x
}

func (l *leases) next(t *testing.T, within time.Duration) provider.Lease {
	t.Helper()
	select {
	case x := <-l.ch:
		return x
	case <-time.After(within):
		t.Fatalf("no lease within %s", within)
	}
	return provider.Lease{}
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *logBuf) Write(p []byte) (int, error) { w.mu.Lock(); defer w.mu.Unlock(); return w.b.Write(p) }
func (w *logBuf) String() string              { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

func env(c *demo.Client, log *logBuf, cfg provider.Settings) provider.Env {
	l := slog.New(slog.DiscardHandler)
	if log != nil {
		l = slog.New(slog.NewTextHandler(log, nil))
	}
	return provider.Env{Dialer: c.Stack, Log: l, DNS: c.Config.DNSServers(), Settings: cfg}
}

func clientAddr(c *demo.Client) netip.Addr { return c.Config.Addresses()[0].Addr() }

func run(t *testing.T, p provider.Provider, l *leases) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx, l.report); close(done) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("provider did not stop within 5 s")
		}
	}
}

func TestGenericMapsTCPAndUDPOnSamePort(t *testing.T) {
	srv, c := setup(t, "generic", 0)
	e := env(c, nil, nil)
	e.TargetPort = 45678
	p, err := natpmp.Info.New(e)
	if err != nil {
		t.Fatal(err)
	}
	l := newLeases()
	stop := run(t, p, l)
	lease := l.next(t, 5*time.Second)
	if len(lease.Ports) != 1 || lease.Ports[0].Local != 45678 || lease.Ports[0].Public == 0 {
		t.Fatalf("lease %+v", lease)
	}
	if lease.PublicIP != demo.PublicIP {
		t.Errorf("public IP %s", lease.PublicIP)
	}
	if got := srv.Gateway.Mapped(clientAddr(c)); got != lease.Ports[0].Public {
		t.Errorf("gateway maps %d, lease says %d", got, lease.Ports[0].Public)
	}
	// Read under the gateway's lock: a request retried under load may be
	// answered while the test reads (the race CI caught).
	if tcp, udp := srv.Gateway.Requests(natpmp.OpMapTCP), srv.Gateway.Requests(natpmp.OpMapUDP); tcp < 1 || udp < 1 {
		t.Errorf("requests: %d TCP, %d UDP", tcp, udp)
	}
	stop()
	if got := srv.Gateway.Mapped(clientAddr(c)); got != 0 {
		t.Errorf("mapping for %d still there after shutdown", got)
	}
}

func TestProtonConventions(t *testing.T) {
	srv, c := setup(t, "proton", 0)
	p, err := protonvpn.Info.New(env(c, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	lease := l.next(t, 5*time.Second)
	port := lease.Ports[0]
	if port.Public != port.Local || port.Public < 1024 {
		t.Fatalf("Proton lease %+v: want the same port inside and out", lease)
	}
	if time.Until(lease.Expires) > 61*time.Second {
		t.Errorf("lease expires in %s, Proton grants 60 s", time.Until(lease.Expires))
	}
	if srv.Gateway.Mapped(clientAddr(c)) != port.Public {
		t.Errorf("gateway does not hold %d", port.Public)
	}
}

func TestRenewKeepsPortAndSurvivesGatewayRestart(t *testing.T) {
	srv, c := setup(t, "generic", 2) // 2 s leases: renew every second
	log := &logBuf{}
	p, err := natpmp.Info.New(env(c, log, nil))
	if err != nil {
		t.Fatal(err)
	}
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	first := l.next(t, 5*time.Second)
	second := l.next(t, 3*time.Second)
	if !second.SamePorts(first) || !second.Renewed.After(first.Renewed) {
		t.Fatalf("renewal changed the lease: %+v then %+v", first, second)
	}
	srv.Gateway.Age(100 * time.Second)
	l.next(t, 3*time.Second) // a reply with the aged epoch
	srv.Gateway.Restart()
	third := l.next(t, 3*time.Second)
	if !third.SamePorts(first) {
		t.Errorf("after a gateway restart the old port should be asked for again: %+v vs %+v", third, first)
	}
	if !strings.Contains(log.String(), "gateway restarted") {
		t.Errorf("restart not noticed; log:\n%s", log)
	}
	// The mapping made again at once says so, for status and events.
	if fourth := l.next(t, 3*time.Second); !strings.Contains(fourth.Note, "re-mapped") || !fourth.SamePorts(first) {
		t.Errorf("re-mapping after the restart: %+v", fourth)
	}
}

func TestRefusedFailsFastWithHint(t *testing.T) {
	_, c := setup(t, "off", 0)
	cl := natpmp.NewClient(c.Stack, demo.GatewayAddr, nil)
	defer cl.Close()
	start := time.Now()
	_, err := cl.External(context.Background())
	if !errors.Is(err, natpmp.ErrRefused) {
		t.Fatalf("error %v, want ErrRefused", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusal took %s: should fail fast, not retry", d)
	}

	p, _ := protonvpn.Info.New(env(c, nil, nil))
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	// The error travels in the report, for status and events.
	if got := l.next(t, 3*time.Second); got.Held() || !strings.Contains(got.Error, "generated without NAT-PMP") {
		t.Errorf("Proton user not told what to do: %+v", got)
	}
}

func TestNoAnswerRetriesThenGivesUp(t *testing.T) {
	_, c := setup(t, "generic", 0)
	// The what's-my-IP host has no NAT-PMP port: refused or silent.
	cl := natpmp.NewClient(c.Stack, demo.InternetHost, nil)
	cl.FirstTimeout, cl.Attempts = 10*time.Millisecond, 3
	defer cl.Close()
	_, err := cl.Map(context.Background(), natpmp.MapRequest{Op: natpmp.OpMapTCP, Internal: 1, External: 1, Lifetime: 60})
	if !errors.Is(err, natpmp.ErrNoAnswer) && !errors.Is(err, natpmp.ErrRefused) {
		t.Fatalf("error %v", err)
	}
}

func TestGatewayDefaultsToDNS(t *testing.T) {
	if _, err := natpmp.Info.New(provider.Env{}); err == nil || !strings.Contains(err.Error(), "--gateway") {
		t.Fatalf("error %v", err)
	}
	if _, err := natpmp.Info.New(provider.Env{Settings: provider.Settings{"gateway": "nope"}}); err == nil {
		t.Fatal("bad gateway accepted")
	}
}

// Proton is asked the way Proton's own client asks: UDP first, public 1
// and private 0 on the first request, then TCP for the port UDP got, and
// the held port on renewals.
func TestProtonAsksLikeProton(t *testing.T) {
	srv, c := setup(t, "proton", 4)
	p, err := protonvpn.Info.New(env(c, nil, provider.Settings{"lifetime": "4s"}))
	if err != nil {
		t.Fatal(err)
	}
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	first := l.next(t, 5*time.Second)
	l.next(t, 5*time.Second) // a renewal
	port := first.Ports[0].Public
	if first.Ports[0].Local != port || first.Ports[0].Protocol != "" {
		t.Errorf("lease %+v: want one port, the same inside and out", first)
	}
	srv.Gateway.Lock()
	h := append([]natpmp.MapRequest(nil), srv.Gateway.History...)
	srv.Gateway.Unlock()
	want := []natpmp.MapRequest{
		{Op: natpmp.OpMapUDP, Internal: 0, External: 1, Lifetime: 4},
		{Op: natpmp.OpMapTCP, Internal: 0, External: port, Lifetime: 4},
		{Op: natpmp.OpMapUDP, Internal: 0, External: port, Lifetime: 4},
		{Op: natpmp.OpMapTCP, Internal: 0, External: port, Lifetime: 4},
	}
	if len(h) < 4 || !slices.Equal(h[:4], want) {
		t.Errorf("requests %+v\nwant %+v", h, want)
	}
}

// Both reply shapes seen from Proton: internal = external, and internal 0.
func TestProtonZeroInternalReply(t *testing.T) {
	srv, c := setup(t, "proton", 0)
	srv.Gateway.Lock()
	srv.Gateway.ZeroInternalReply = true
	srv.Gateway.Unlock()
	p, _ := protonvpn.Info.New(env(c, nil, nil))
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	got := l.next(t, 5*time.Second)
	if !got.Held() || got.Error != "" || got.Ports[0].Local != got.Ports[0].Public {
		t.Errorf("lease %+v", got)
	}
}

// A gateway that gives UDP another port than TCP: the odd mapping is
// deleted and asked for again (RFC 6886 3.3 returns an existing mapping
// unchanged); if it stays apart, each protocol is held on its own port
// instead of failing every cycle.
func TestTCPAndUDPOnDifferentPorts(t *testing.T) {
	srv, c := setup(t, "generic", 4)
	srv.Gateway.Lock()
	srv.Gateway.SplitUDP = true
	srv.Gateway.Unlock()
	p, _ := natpmp.Info.New(env(c, nil, provider.Settings{"lifetime": "4s"}))
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	first := l.next(t, 5*time.Second)
	second := l.next(t, 5*time.Second) // a renewal keeps the same ports
	if len(first.Ports) != 2 || first.Ports[0].Protocol != "tcp" || first.Ports[1].Protocol != "udp" ||
		first.Ports[0].Public == first.Ports[1].Public || first.Error != "" || !second.SamePorts(first) {
		t.Fatalf("leases %+v then %+v", first, second)
	}
	srv.Gateway.Lock()
	deleted := false
	for _, r := range srv.Gateway.History {
		deleted = deleted || r.Op == natpmp.OpMapUDP && r.Lifetime == 0
	}
	srv.Gateway.Unlock()
	if !deleted {
		t.Error("the odd UDP mapping was not deleted before asking again")
	}
}

// The probe re-asserts the held mapping: a gateway that forgot it without
// an epoch change (miniupnpd restarted with system_uptime=yes) has it
// back at the next check, on the same port; one that now gives another
// port makes the check say the port is dead and the mapping loop report
// the new port at once.
func TestProbeReassertsForgottenMapping(t *testing.T) {
	srv, c := setup(t, "generic", 0)
	log := &logBuf{}
	e := env(c, log, nil)
	e.TargetPort = 45678
	p, err := natpmp.New(e, natpmp.Generic)
	if err != nil {
		t.Fatal(err)
	}
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	first := l.next(t, 5*time.Second)
	port := first.Ports[0].Public
	probe := func() provider.Check {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		check, err := p.Probe(ctx)
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		return check
	}
	if c := probe(); !c.Verified || c.Dead != "" {
		t.Fatalf("probe of a live mapping: %+v", c)
	}

	srv.Gateway.Forget(false)
	if got := srv.Gateway.Mapped(clientAddr(c)); got != 0 {
		t.Fatalf("gateway still maps %d", got)
	}
	if c := probe(); !c.Verified {
		t.Errorf("re-asserting a forgotten but free port: %+v", c)
	}
	if got := srv.Gateway.Mapped(clientAddr(c)); got != port {
		t.Errorf("after the check the gateway maps %d, want %d again", got, port)
	}

	srv.Gateway.Forget(true) // and someone else took the port
	check := probe()
	if check.Dead == "" || check.Verified {
		t.Fatalf("a port the gateway gave away: %+v", check)
	}
	next := l.next(t, 3*time.Second)
	if next.SamePorts(first) || !next.Held() {
		t.Fatalf("after the port was lost the loop reported %+v", next)
	}
	if got := srv.Gateway.Mapped(clientAddr(c)); got != next.Ports[0].Public {
		t.Errorf("gateway maps %d, lease says %d", got, next.Ports[0].Public)
	}
	if !strings.Contains(log.String(), "lost the mapping") {
		t.Errorf("log:\n%s", log)
	}
	if c := probe(); !c.Verified {
		t.Errorf("probe of the new mapping: %+v", c)
	}
	eps := p.ControlEndpoints()
	if len(eps) != 1 || eps[0].Network != "udp" || eps[0].Addr.Port() != natpmp.Port {
		t.Errorf("control endpoints %v", eps)
	}
}

// Proton's conventions against a gateway that refuses internal port 0
// (miniupnpd, a self-hosted server): vpnfwd asks the plain way instead of
// failing every cycle.
func TestProtonConventionsOnAPlainGateway(t *testing.T) {
	srv, c := setup(t, "generic", 0)
	srv.Gateway.Lock()
	srv.Gateway.RefuseInternalZero = true
	srv.Gateway.Unlock()
	log := &logBuf{}
	p, _ := protonvpn.Info.New(env(c, log, nil))
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	got := l.next(t, 5*time.Second)
	if !got.Held() || got.Error != "" || got.Ports[0].Local == 0 {
		t.Fatalf("lease %+v\n%s", got, log)
	}
	if !strings.Contains(log.String(), "asking as plain NAT-PMP") {
		t.Errorf("no word of the fallback:\n%s", log)
	}
}

// Several Proton ports, asked as gluetun asks (internal 56789+i, no public
// port suggested, UDP then TCP): each its own public port, different from
// its internal one; renewals keep them all.
func TestProtonSeveralPorts(t *testing.T) {
	srv, c := setup(t, "proton", 4)
	p, err := protonvpn.Info.New(env(c, nil, provider.Settings{"lifetime": "4s", "ports_count": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	l := newLeases()
	stop := run(t, p, l)
	defer stop()
	first := l.next(t, 5*time.Second)
	if len(first.Ports) != 5 {
		t.Fatalf("lease %+v: want 5 ports", first)
	}
	seen := map[uint16]bool{}
	for i, port := range first.Ports {
		if port.Local != uint16(56789+i) || port.Public == port.Local || seen[port.Public] || port.Protocol != "" {
			t.Errorf("port %d: %+v", i, port)
		}
		seen[port.Public] = true
	}
	renewed := l.next(t, 5*time.Second)
	if !renewed.SamePorts(first) {
		t.Errorf("renewal changed the ports: %v -> %v", first.PublicPorts(), renewed.PublicPorts())
	}
	srv.Gateway.Lock()
	h := append([]natpmp.MapRequest(nil), srv.Gateway.History...)
	srv.Gateway.Unlock()
	if len(h) < 2 || h[0] != (natpmp.MapRequest{Op: natpmp.OpMapUDP, Internal: 56789, Lifetime: 4}) ||
		h[1] != (natpmp.MapRequest{Op: natpmp.OpMapTCP, Internal: 56789, External: first.Ports[0].Public, Lifetime: 4}) {
		t.Errorf("first requests %+v", h[:min(len(h), 2)])
	}
	if _, err := protonvpn.Info.New(env(c, nil, provider.Settings{"ports_count": "6"})); err == nil || !strings.Contains(err.Error(), "from 1 to 5") {
		t.Errorf("6 ports: %v", err)
	}
}
