package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// fakeTunnel is a Tunnel whose liveness the test switches; Rehandshake
// brings a dead tunnel back only once the outage is over, as a real
// server would answer a fresh handshake.
type fakeTunnel struct {
	dead         atomic.Bool
	rehandshakes atomic.Int64
}

func (f *fakeTunnel) Stats() (tunnel.Stats, error) {
	return tunnel.Stats{LastHandshake: time.Now(), Endpoint: "192.0.2.1:51820"}, nil
}
func (f *fakeTunnel) Endpoint() netip.AddrPort { return netip.MustParseAddrPort("192.0.2.1:51820") }
func (f *fakeTunnel) Rehandshake(context.Context) error {
	f.rehandshakes.Add(1)
	return nil
}

func (f *fakeTunnel) probe(ctx context.Context) error {
	if f.dead.Load() {
		<-ctx.Done()
		return errors.New("no answer")
	}
	return nil
}

// fakeProvider reports whatever the test sends it.
type fakeProvider struct {
	leases    chan provider.Lease
	refreshed atomic.Int64
}

func (p *fakeProvider) Run(ctx context.Context, report func(provider.Lease)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-p.leases:
			report(l)
		}
	}
}
func (p *fakeProvider) Refresh() { p.refreshed.Add(1) }

// events records what a sink heard.
type events struct {
	mu   sync.Mutex
	list []Event
}

func (e *events) sink(ev Event) { e.mu.Lock(); e.list = append(e.list, ev); e.mu.Unlock() }

func (e *events) all() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

func (e *events) kinds() string {
	var s []string
	for _, ev := range e.all() {
		k := string(ev.Kind)
		if ev.Kind == KindState {
			k += ":" + string(ev.State)
		}
		s = append(s, k)
	}
	return strings.Join(s, ",")
}

func (e *events) wait(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.kinds(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %s", what, e.kinds())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func lease(port uint16) provider.Lease {
	return provider.Lease{Provider: "fake", Ports: []provider.Port{{Public: port, Local: port}}}
}

func start(t *testing.T) (*Session, *fakeTunnel, *fakeProvider, *events, func()) {
	t.Helper()
	before := runtime.NumGoroutine()
	tun, prov, evs := &fakeTunnel{}, &fakeProvider{leases: make(chan provider.Lease)}, &events{}
	s := New(tun, prov, Options{Probe: tun.probe, ProbeEvery: 20 * time.Millisecond, ProbeTimeout: 20 * time.Millisecond,
		RehandshakeEvery: 20 * time.Millisecond, Sinks: []Sink{evs.sink}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
		// Every goroutine the session started has ended.
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("goroutines left: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return s, tun, prov, evs, stop
}

func TestOutageRecoveryAndOrder(t *testing.T) {
	s, tun, prov, evs, stop := start(t)
	evs.wait(t, "state:up")
	prov.leases <- lease(1000)
	evs.wait(t, "port")
	tun.dead.Store(true)
	evs.wait(t, "state:down")
	snap := s.Snapshot()
	if snap.State != StateDown || snap.DownSince.IsZero() {
		t.Errorf("snapshot while down: %+v", snap)
	}
	// It keeps forcing handshakes while down.
	for tun.rehandshakes.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	// A port change while down, then the tunnel back: consumers must get
	// the new port and re-apply the new one, never the old.
	prov.leases <- lease(2000)
	evs.wait(t, "port,")
	tun.dead.Store(false)
	evs.wait(t, "reconnect")
	stop()
	var last uint16
	for _, ev := range evs.all() {
		if ev.Kind == KindReconnect || ev.Kind == KindPort {
			last = ev.Lease.Ports[0].Public
		}
		if ev.Kind == KindReconnect && ev.Lease.Ports[0].Public != 2000 {
			t.Errorf("reconnect with port %d after 2000", ev.Lease.Ports[0].Public)
		}
	}
	if last != 2000 {
		t.Errorf("last port heard %d", last)
	}
	if prov.refreshed.Load() == 0 {
		t.Error("provider not asked to renew after the outage")
	}
	want := "state:up,port,state:down,recovery,"
	if !strings.HasPrefix(evs.kinds(), want) || !strings.HasSuffix(evs.kinds(), "state:stopping,lost") {
		t.Errorf("events %s", evs.kinds())
	}
	seq := uint64(0)
	for _, ev := range evs.all() {
		if ev.Seq != seq+1 {
			t.Fatalf("event numbers not in order: %d after %d", ev.Seq, seq)
		}
		seq = ev.Seq
	}
}

func TestProviderErrorTravelsInEvents(t *testing.T) {
	s, _, prov, evs, stop := start(t)
	defer stop()
	prov.leases <- provider.Lease{Provider: "fake"}.Failed(errors.New("gateway refused: regenerate the key"))
	evs.wait(t, "error")
	if got := s.Snapshot().Lease.Error; !strings.Contains(got, "regenerate") {
		t.Errorf("snapshot error %q", got)
	}
	prov.leases <- lease(3000)
	evs.wait(t, "port")
	if got := s.Snapshot().Lease.Error; got != "" {
		t.Errorf("error kept after success: %q", got)
	}
}

// A subscriber that blocks holds up neither the session nor the others,
// and once it moves on it hears events in order, the last one included.
func TestSlowSubscriber(t *testing.T) {
	release := make(chan struct{})
	var slow []Event
	var mu sync.Mutex
	blocking := func(ev Event) {
		<-release
		mu.Lock()
		slow = append(slow, ev)
		mu.Unlock()
	}
	prov := &fakeProvider{leases: make(chan provider.Lease)}
	fast := &events{}
	s := New(&fakeTunnel{}, prov, Options{Probe: func(context.Context) error { return nil }, ProbeEvery: 10 * time.Millisecond,
		Sinks: []Sink{blocking, fast.sink}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for p := uint16(1000); p < 1200; p++ {
		prov.leases <- lease(p) // 200 port changes while one subscriber is stuck
	}
	// The other subscriber is not held up: it hears the last port (it
	// may itself have missed some of 200 quick changes, oldest first).
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs := fast.all()
		if n := len(evs); n > 0 && evs[n-1].Kind == KindPort && evs[n-1].Lease.Ports[0].Public == 1199 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other subscriber did not hear the last port: %s", fast.kinds())
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(release)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	var last uint16
	for _, ev := range slow {
		if ev.Kind != KindPort {
			continue
		}
		if p := ev.Lease.Ports[0].Public; p <= last {
			t.Fatalf("port %d after %d", p, last)
		} else {
			last = p
		}
	}
	if last != 1199 {
		t.Errorf("the slow subscriber's last port is %d, want 1199", last)
	}
	if len(slow) > queueSize+5 { // the queue, the one in hand, the final events
		t.Errorf("the slow subscriber heard %d events: its queue is not bounded", len(slow))
	}
}

// The session records what the data plane applies: status reports a new
// port only once Apply has returned, the previous lease is kept, and the
// subscribers hear each event after Apply with the ports given up.
func TestAppliedLeaseIsRecorded(t *testing.T) {
	applying := make(chan struct{})
	release := make(chan struct{})
	apply := func(ev Event) {
		if ev.Kind == KindPort && ev.Lease.Ports[0].Public == 2000 {
			close(applying)
			<-release
		}
	}
	prov, evs := &fakeProvider{leases: make(chan provider.Lease)}, &events{}
	s := New(&fakeTunnel{}, prov, Options{Probe: func(context.Context) error { return nil }, ProbeEvery: 10 * time.Millisecond,
		Apply: apply, Provider: "configured", Sinks: []Sink{evs.sink}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	// Run waits for the apply stage: a failure while Apply is held must
	// let it go, or the test hangs instead of failing.
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer func() { unblock(); cancel(); <-done }()
	prov.leases <- lease(1000)
	evs.wait(t, "port")
	if a := s.Snapshot().Applied; a == nil || a.Ports[0].Public != 1000 || a.Provider != "configured" {
		t.Fatalf("applied %+v, want port 1000 of the configured provider", a)
	}
	prov.leases <- lease(2000)
	select {
	case <-applying:
	case <-time.After(5 * time.Second):
		t.Fatal("port 2000 never reached Apply")
	}
	// Held, not yet applied: status still shows the applied port, with
	// nothing verified.
	snap := s.Snapshot()
	if snap.Lease.Ports[0].Public != 2000 {
		t.Fatalf("held %+v", snap.Lease)
	}
	if l, _ := snap.Reported(); l.Ports[0].Public != 1000 {
		t.Errorf("reported %v while 2000 is being applied, want 1000", l.PublicPorts())
	}
	unblock()
	deadline := time.Now().Add(5 * time.Second)
	for found := false; !found; {
		for _, ev := range evs.all() {
			if ev.Kind == KindPort && ev.Lease.Ports[0].Public == 2000 {
				if !slices.Equal(ev.Released, []uint16{1000}) {
					t.Errorf("released %v, want [1000]", ev.Released)
				}
				found = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no port 2000: %s", evs.kinds())
		}
		time.Sleep(2 * time.Millisecond)
	}
	snap = s.Snapshot()
	if snap.Applied.Ports[0].Public != 2000 || snap.Previous == nil || snap.Previous.Ports[0].Public != 1000 {
		t.Errorf("applied %v previous %v", snap.Applied, snap.Previous)
	}
	if l, _ := snap.Reported(); l.Ports[0].Public != 2000 {
		t.Errorf("reported %v", l.PublicPorts())
	}
}

// The data plane, and every consumer after it, hears an event only once
// the session's snapshot shows it: Apply never sees an event newer than
// Snapshot (its number, its port). Before, the snapshot was stored after
// the event was queued, and TestAppliedLeaseIsRecorded could fail, then
// hang, when Apply ran first.
func TestSnapshotBeforeApply(t *testing.T) {
	var s *Session
	var mu sync.Mutex
	var bad []string
	apply := func(ev Event) {
		if snap := s.Snapshot(); snap.Seq < ev.Seq {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("event %d (%s %v) heard while the snapshot is at %d (%v)",
				ev.Seq, ev.Kind, ev.Lease.PublicPorts(), snap.Seq, snap.Lease.PublicPorts()))
			mu.Unlock()
		}
	}
	prov := &fakeProvider{leases: make(chan provider.Lease)}
	s = New(&fakeTunnel{}, prov, Options{Probe: func(context.Context) error { return nil }, Apply: apply})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	const n = 500
	for i := range n {
		prov.leases <- lease(uint16(1000 + i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for a := s.Snapshot().Applied; a == nil || a.Ports[0].Public != 1000+n-1; a = s.Snapshot().Applied {
		if time.Now().After(deadline) {
			t.Fatal("the last port was never applied")
		}
		time.Sleep(2 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("%d of %d events reached Apply before the snapshot showed them; first: %s", len(bad), n, bad[0])
	}
}

// A port lost is reported at once, before the data plane has applied the
// loss (the gateway no longer forwards it); a new one only once applied.
func TestLostPortReportedAtOnce(t *testing.T) {
	held := provider.Lease{Provider: "fake", Ports: []provider.Port{{Public: 1000, Local: 1000}}}
	snap := Snapshot{Lease: provider.Lease{Provider: "fake"}, Applied: &held}
	if l, _ := snap.Reported(); l.Held() {
		t.Errorf("a lost port not yet applied is reported: %v", l.PublicPorts())
	}
	next := lease(2000)
	snap = Snapshot{Lease: next, Applied: &held}
	if l, _ := snap.Reported(); l.PublicPorts()[0] != 1000 {
		t.Errorf("a new port reported before it is applied: %v", l.PublicPorts())
	}
}
