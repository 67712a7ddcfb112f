package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// checkingProvider is a fakeProvider whose liveness check says what the
// test sets (as natpmp.Provider's re-assertion of the mapping does).
type checkingProvider struct {
	fakeProvider
	check atomic.Pointer[provider.Check]
	dead  atomic.Bool // nothing comes back through the tunnel
}

func (p *checkingProvider) Probe(ctx context.Context) (provider.Check, error) {
	if p.dead.Load() {
		<-ctx.Done()
		return provider.Check{}, errors.New("no answer")
	}
	if c := p.check.Load(); c != nil {
		return *c, nil
	}
	return provider.Check{}, nil
}

// runWith runs a session over prov with o (fast checks) until the test
// ends.
func runWith(t *testing.T, prov provider.Provider, o Options) (*Session, *fakeTunnel, *events) {
	t.Helper()
	tun, evs := &fakeTunnel{}, &events{}
	o.ProbeEvery, o.ProbeTimeout, o.RehandshakeEvery = 20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond
	o.Sinks = []Sink{evs.sink}
	s := New(tun, prov, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, tun, evs
}

func waitSnap(t *testing.T, s *Session, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		snap := s.Snapshot()
		if ok(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: snapshot %+v", what, snap)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A check that proves the mapping makes the port verified; one that says
// the gateway lost it makes the port dead at once, asks the provider to
// map again, and a later proof (or a new port) makes it healthy again,
// each change an event of its own.
func TestPortDeadThenVerified(t *testing.T) {
	prov := &checkingProvider{fakeProvider: fakeProvider{leases: make(chan provider.Lease)}}
	prov.check.Store(&provider.Check{Verified: true, Method: "mapping re-asserted"})
	s, _, evs := runWith(t, prov, Options{})
	prov.leases <- lease(1000)
	waitSnap(t, s, "verified", func(sn Snapshot) bool { return sn.Port.VerifiedBy == "mapping re-asserted" })

	refreshed := prov.refreshed.Load()
	prov.check.Store(&provider.Check{Dead: "the gateway forgot port 1000"})
	snap := waitSnap(t, s, "dead", func(sn Snapshot) bool { return sn.Port.Dead != "" })
	if !strings.Contains(snap.Port.Dead, "forgot") || snap.Port.DeadSince.IsZero() {
		t.Errorf("dead port: %+v", snap.Port)
	}
	if prov.refreshed.Load() == refreshed {
		t.Error("the provider was not asked to map again")
	}
	evs.wait(t, "health")
	prov.check.Store(&provider.Check{Verified: true, Method: "mapping re-asserted"})
	waitSnap(t, s, "alive again", func(sn Snapshot) bool { return sn.Port.Dead == "" && sn.Port.DeadSince.IsZero() })
	evs.waitCount(t, KindHealth, 2) // consumers hear events on their own goroutines
	var health []string
	for _, ev := range evs.all() {
		if ev.Kind == KindHealth {
			health = append(health, ev.Detail)
		}
	}
	if len(health) != 2 || !strings.HasPrefix(health[0], "dead: ") || !strings.HasPrefix(health[1], "verified: ") {
		t.Errorf("health events %q", health)
	}

	// Dead again, then the provider maps a new port: the new port starts
	// with nothing known of it, and is not dead.
	prov.check.Store(&provider.Check{Dead: "gone"})
	waitSnap(t, s, "dead", func(sn Snapshot) bool { return sn.Port.Dead != "" })
	prov.check.Store(&provider.Check{})
	prov.leases <- lease(2000)
	waitSnap(t, s, "new port", func(sn Snapshot) bool {
		return sn.Lease.Held() && sn.Lease.Ports[0].Public == 2000 && sn.Port.Dead == ""
	})
}

// A port whose lease expired while the provider could not renew it is
// dead.
func TestExpiredLeaseIsDead(t *testing.T) {
	prov := &fakeProvider{leases: make(chan provider.Lease)}
	s, _, _ := runWith(t, prov, Options{Probe: func(context.Context) error { return nil }})
	l := lease(1000)
	l.Expires = time.Now().Add(50 * time.Millisecond)
	prov.leases <- l.Failed(errors.New("the API is down"))
	snap := waitSnap(t, s, "dead", func(sn Snapshot) bool { return sn.Port.Dead != "" })
	if !strings.Contains(snap.Port.Dead, "the API is down") {
		t.Errorf("dead: %q", snap.Port.Dead)
	}
}

// The outside check: open verifies; one "closed" is asked again before
// anything is concluded; no answer is "unknown", never closed; two closed
// in a row make the port dead.
func TestOutsideCheck(t *testing.T) {
	var answer atomic.Value // "open", "closed", "error"
	answer.Store("open")
	var asked atomic.Int64
	prov := &fakeProvider{leases: make(chan provider.Lease)}
	o := Options{Probe: func(context.Context) error { return nil }, PortCheckName: "outside check by test",
		PortCheckEvery: 30 * time.Millisecond, PortCheckRecheck: 30 * time.Millisecond,
		PortCheck: func(ctx context.Context, l provider.Lease) (bool, error) {
			asked.Add(1)
			switch answer.Load() {
			case "open":
				return true, nil
			case "closed":
				return false, nil
			case "service down":
				return false, ErrServiceDown
			}
			return false, errors.New("checker down")
		}}
	s, _, _ := runWith(t, prov, o)
	prov.leases <- lease(1000)
	waitSnap(t, s, "open", func(sn Snapshot) bool {
		return sn.Port.Outside == "open" && sn.Port.VerifiedBy == "outside check by test"
	})
	answer.Store("error")
	waitSnap(t, s, "unknown", func(sn Snapshot) bool { return sn.Port.Outside == "unknown" })
	if s.Snapshot().Port.Dead != "" {
		t.Fatal("no answer taken for dead")
	}
	answer.Store("closed")
	waitSnap(t, s, "closed once", func(sn Snapshot) bool { return sn.Port.Outside == "closed" })
	if s.Snapshot().Port.Dead != "" {
		t.Fatal("one closed answer taken for dead")
	}
	snap := waitSnap(t, s, "closed twice", func(sn Snapshot) bool { return sn.Port.Dead != "" })
	if !strings.Contains(snap.Port.Dead, "times in a row") {
		t.Errorf("dead: %q", snap.Port.Dead)
	}
	if prov.refreshed.Load() == 0 {
		t.Error("a port found closed was not mapped again")
	}
	// The provider's renewal does not outweigh the outside check.
	renewed := lease(1000)
	renewed.Renewed = time.Now()
	prov.leases <- renewed
	time.Sleep(50 * time.Millisecond) // the report is taken in; the port must stay dead
	if sn := s.Snapshot(); sn.Port.Dead == "" {
		t.Errorf("a renewal cleared a port the outside check found dead: %+v", sn.Port)
	}
	// The checker reached vpnfwd, the local service refused: the port
	// works (not dead, and not a reason to move).
	answer.Store("service down")
	waitSnap(t, s, "service down", func(sn Snapshot) bool { return sn.Port.Dead == "" && sn.Port.Outside == "service down" })
	answer.Store("open")
	waitSnap(t, s, "open again", func(sn Snapshot) bool { return sn.Port.Dead == "" && sn.Port.Outside == "open" })
	if asked.Load() < 5 {
		t.Errorf("asked %d times", asked.Load())
	}
}

// Failover: a tunnel that stays down moves to the next server after
// FailoverAfter; while no server works the wait doubles; once a port
// works again the wait is back to FailoverAfter. A port that stays dead
// moves too.
func TestFailoverRule(t *testing.T) {
	prov := &checkingProvider{fakeProvider: fakeProvider{leases: make(chan provider.Lease)}}
	var moves atomic.Int64
	var movedAt []time.Time
	var mu sync.Mutex
	o := Options{FailoverAfter: 100 * time.Millisecond, Failover: moveFunc(func(context.Context) (string, error) {
		moves.Add(1)
		mu.Lock()
		movedAt = append(movedAt, time.Now())
		mu.Unlock()
		return "server 2 of 2", nil
	})}
	s, _, evs := runWith(t, prov, o)
	prov.leases <- lease(1000)
	waitSnap(t, s, "up", func(sn Snapshot) bool { return sn.State == StateUp && sn.Lease.Held() })
	time.Sleep(300 * time.Millisecond) // healthy for a while: no move
	if moves.Load() != 0 {
		t.Fatalf("moved while healthy")
	}
	prov.dead.Store(true)
	waitSnap(t, s, "three moves", func(sn Snapshot) bool { return sn.Failovers >= 3 })
	mu.Lock()
	gap1, gap2 := movedAt[1].Sub(movedAt[0]), movedAt[2].Sub(movedAt[1])
	mu.Unlock()
	// Lower bounds only: a busy machine makes a gap longer, never shorter
	// (compared with each other, a late first move made the second look
	// short).
	if gap1 < o.FailoverAfter || gap2 < 2*o.FailoverAfter {
		t.Errorf("no server works, yet the wait did not grow: %s then %s, want at least %s then %s", gap1, gap2, o.FailoverAfter, 2*o.FailoverAfter)
	}
	// Back: a new port on the new server is heard as a port change even
	// with the same number.
	prov.dead.Store(false)
	prov.check.Store(&provider.Check{Verified: true, Method: "mapping re-asserted"})
	prov.leases <- lease(1000)
	waitSnap(t, s, "healthy", func(sn Snapshot) bool { return sn.State == StateUp && sn.Port.Dead == "" && sn.Port.VerifiedBy != "" })
	evs.waitCount(t, KindPort, 2) // the port after a move is a port event
	before := moves.Load()
	time.Sleep(300 * time.Millisecond)
	if moves.Load() != before {
		t.Errorf("moved again while healthy")
	}
	// A port that stays dead moves too, after FailoverAfter (not the
	// doubled wait: a port worked since).
	prov.check.Store(&provider.Check{Dead: "gone"})
	deadAt := time.Now()
	waitSnap(t, s, "moved for a dead port", func(sn Snapshot) bool { return sn.Failovers > before })
	if took := time.Since(deadAt); took > time.Second {
		t.Errorf("a dead port moved after %s", took)
	}
}

// waitCount waits until the sink heard n events of kind k.
func (e *events) waitCount(t *testing.T, k Kind, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := 0
		for _, ev := range e.all() {
			if ev.Kind == k {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events, want %d: %s", got, k, n, e.kinds())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A new port is checked from outside once the data plane serves it
// (Options.Apply returned for it), not in the moment between the session
// taking it and the plane applying it, when the checker would find it
// closed (TestOutsidePortCheck failed so in CI: the check ran 1 ms
// before the bridge listened, and the port was open 15 s later).
func TestOutsideCheckWaitsForTheDataPlane(t *testing.T) {
	release := make(chan struct{})
	var served atomic.Bool
	prov := &fakeProvider{leases: make(chan provider.Lease)}
	asked := make(chan bool, 10)
	o := Options{Probe: func(context.Context) error { return nil }, PortCheckName: "outside check by test",
		PortCheckEvery: time.Hour, PortCheckRecheck: time.Hour,
		Apply: func(ev Event) {
			if ev.Kind == KindPort && ev.Lease.Held() {
				<-release // the plane is slow to serve the port
				served.Store(true)
			}
		},
		PortCheck: func(ctx context.Context, l provider.Lease) (bool, error) {
			asked <- served.Load()
			return served.Load(), nil
		}}
	s, _, _ := runWith(t, prov, o)
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before runWith's: the run ends after its apply stage
	prov.leases <- lease(1000)
	select {
	case <-asked:
		t.Fatal("the port was checked before the data plane served it")
	case <-time.After(100 * time.Millisecond): // the window in which a check must not come
	}
	releaseOnce()
	select {
	case ok := <-asked:
		if !ok {
			t.Fatal("checked, but not after the plane served the port")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the port was never checked once served")
	}
	waitSnap(t, s, "open", func(sn Snapshot) bool { return sn.Port.Outside == "open" })
}
