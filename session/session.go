// Package session supervises one vpnfwd run; it is the one authority on
// the port. A single goroutine (Run) owns the tunnel's health, the
// liveness checks, the port's health (held, verified, dead), the lease and
// the ordered stream of typed events; everything else talks to it by
// message or reads its Snapshot. Recovery lives here: a dead tunnel gets a
// fresh handshake (endpoint re-resolved) within seconds, a dead port is
// asked for again, and a tunnel or port that stays dead moves to the next
// server (Options.Failover); when the tunnel comes back the provider renews
// at once and consumers re-apply the port.
//
// Every event goes through one pipeline (Hub, hub.go): the data plane
// applies it first (Options.Apply), the session records the lease now
// applied and the one before, then each consumer hears it in order from
// its own bounded queue (Subscribe, Options.Sinks) on a goroutine of its
// own, so the session's loop never waits on one and no consumer can see
// an older port after a newer one. The session also keeps the last port
// in the state store (Options.Store), off its loop.
package session

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/status"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// State is the session's state as status and events show it.
type State string

const (
	StateConnecting State = "connecting" // no handshake yet
	StateUp         State = "up"
	StateDown       State = "down" // liveness checks fail; recovering
	StateStopping   State = "stopping"
	StateStopped    State = "stopped" // stopped on request (SetRunning); the port released
)

// Kind says what an Event is about.
type Kind string

const (
	KindState     Kind = "state"     // the state changed
	KindPort      Kind = "port"      // a new port (or ports) is held
	KindLost      Kind = "lost"      // the port was lost (or released at exit)
	KindReconnect Kind = "reconnect" // the tunnel came back with the same port: re-apply it
	KindError     Kind = "error"     // the provider's last attempt failed (Detail), or recovered ("")
	KindRecovery  Kind = "recovery"  // a recovery step (Detail): new handshake forced, tunnel back
	// KindHealth: the port's health changed: known dead (Detail says
	// why), or verified working again (Detail says how).
	KindHealth Kind = "health"
	// Kinds from outside the loop (Hub.Note), ordered with its events:
	// KindPublish is a consumer's outcome (Consumer), KindApps the apps'
	// mappings now (Apps: tun mode, exec).
	KindPublish Kind = "publish"
	KindApps    Kind = "app_mappings"
	// KindCheck is never emitted: publish hands it to a consumer that
	// re-checks the port it holds every so often.
	KindCheck Kind = "check"
)

// Event is one change, numbered in the order it happened: vpnfwd's one
// vocabulary for what the data plane, the publishers and the API's event
// stream hear.
type Event struct {
	Seq    uint64         `json:"seq"`
	Kind   Kind           `json:"kind"`
	At     time.Time      `json:"at"`
	State  State          `json:"state"`
	Lease  provider.Lease `json:"lease"`
	Health PortHealth     `json:"health"`
	Detail string         `json:"detail,omitempty"`
	// Released are the public ports given up (a new port or a lost one):
	// the hub sets what the data plane applied before; a publisher sets
	// what its own consumer last heard.
	Released []uint16            `json:"released,omitempty"`
	Consumer *status.Consumer    `json:"consumer,omitempty"` // KindPublish
	Apps     []status.AppMapping `json:"apps,omitempty"`     // KindApps
}

// Ports are the lease's public ports, without 0 (never published).
func (ev Event) Ports() []uint16 {
	return slices.DeleteFunc(ev.Lease.PublicPorts(), func(p uint16) bool { return p == 0 })
}

// Sink hears every event, in order, on a goroutine of its own (one per
// sink); it may block, but while it does its queue fills and the oldest
// events a later one supersedes give way (see hub.go).
type Sink func(Event)

// Tunnel is the WireGuard device as the session drives it (*wg.Device).
type Tunnel interface {
	Stats() (tunnel.Stats, error)
	Endpoint() netip.AddrPort
	// Rehandshake re-resolves the endpoint and drops the session keys so
	// the next packet starts a fresh handshake.
	Rehandshake(ctx context.Context) error
}

// Failover moves the tunnel to another server (*failover.Mover). The
// session calls Move on a goroutine of its own, one move at a time, with
// a deadline; Move says what it did, for the log and events.
type Failover interface {
	Move(ctx context.Context) (string, error)
}

// Options tune a Session; zero values pick the defaults.
type Options struct {
	Log *slog.Logger
	// Probe is the liveness check through the tunnel: nil error means
	// something came back. Default: the provider's own (provider.Prober);
	// with none, the tunnel's counters alone (passive, slower).
	Probe func(ctx context.Context) error
	// ProbeEvery is the check interval while up (1.5 s); while down or
	// connecting it is halved.
	ProbeEvery time.Duration
	// ProbeTimeout bounds one check (1 s).
	ProbeTimeout time.Duration
	// DownAfter consecutive failed checks mean the tunnel is down (2).
	DownAfter int
	// RehandshakeEvery is how often a down tunnel is made to start over
	// (1 s).
	RehandshakeEvery time.Duration
	// StallAfter is the passive rule when there is no probe: sent but
	// nothing received for this long means down (30 s).
	StallAfter time.Duration
	// Failover, if set, moves the tunnel to the next server (the next
	// wg-quick file; PIA: a fresh key on the region's next server); the
	// provider then gets a port there. It is moved when the tunnel has
	// stayed down, the port dead, or no port could be had, for
	// FailoverAfter (5 s); on the new server the same rule applies, with
	// the wait doubled (up to 2 min) while no server has worked since the
	// last move. It never moves back by itself: only the same rule moves
	// on, round the list.
	Failover      Failover
	FailoverAfter time.Duration
	// PortCheck, if set, asks an outside checker through the tunnel
	// whether the held port is open (see portcheck). open is meaningful
	// only when err is nil; an error is "unknown", never "closed". It
	// runs every PortCheckEvery (5 min), at once after a new port and
	// after every recovery.
	PortCheck      func(ctx context.Context, l provider.Lease) (open bool, err error)
	PortCheckEvery time.Duration
	// PortCheckRecheck is how soon the outside check asks again after
	// one "closed" (two in a row make the port dead), and how often while
	// the port is dead (15 s).
	PortCheckRecheck time.Duration
	// PortCheckName says what the outside check is, for status
	// ("outside check by portcheck.example").
	PortCheckName string
	// Apply is the data plane: it hears each event first, on the hub's
	// apply stage, and the consumers hear it once it returns (the bridge
	// listens on a new port before anyone is told of it). It must not
	// block for long.
	Apply func(Event)
	// Provider names the provider as configured: every lease carries it
	// (status and the saved port show it).
	Provider string
	// Sinks hear every event after Apply; each is a subscriber of its own.
	Sinks []Sink
	// Store, when set, keeps the last port held (SavedPorts reads it
	// back for the next run).
	Store provider.Store
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ProbeEvery <= 0 {
		// With a 1-s check, a tunnel that dies is suspect (a failed
		// check, /healthz 503) within 2.5 s.
		o.ProbeEvery = 1500 * time.Millisecond
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = time.Second
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 2
	}
	if o.RehandshakeEvery <= 0 {
		o.RehandshakeEvery = time.Second
	}
	if o.StallAfter <= 0 {
		o.StallAfter = 30 * time.Second
	}
	if o.FailoverAfter <= 0 {
		o.FailoverAfter = 5 * time.Second
	}
	if o.PortCheckEvery <= 0 {
		o.PortCheckEvery = 5 * time.Minute
	}
	if o.PortCheckRecheck <= 0 {
		o.PortCheckRecheck = 15 * time.Second
	}
	if o.PortCheckName == "" {
		o.PortCheckName = "outside port check"
	}
}

// Snapshot is the session's state at one moment, for status and metrics.
type Snapshot struct {
	State         State
	Since         time.Time // when State began
	DownSince     time.Time // when the tunnel went down (zero while up)
	LastRecovery  string    // the last recovery step, for status
	Rehandshakes  int64     // fresh handshakes forced
	Failovers     int64     // moves to another server (PIA: fresh keys registered)
	Remaps        int64     // ports the provider mapped again (a gateway restart)
	Recoveries    int64     // outages recovered from
	ProbeFailures int64     // liveness checks that failed
	FailedChecks  int       // checks in a row that got nothing back (0: the last one answered)
	Tunnel        tunnel.Stats
	Endpoint      netip.AddrPort
	Lease         provider.Lease // held: Error holds the provider's last error
	Seq           uint64         // the last event's number
	Port          PortHealth
	// Applied is the lease the data plane serves (nil: none applied
	// yet), Previous the one it served before.
	Applied, Previous *provider.Lease
}

// Reported is the lease status shows and its health: the held one (fresh
// renewals, errors, health) while the data plane serves its ports, else
// the applied one, with nothing verified yet. A port lost is reported at
// once: the gateway no longer forwards it, whatever the data plane still
// listens on (gluetun's clients read port 0 right after a stop).
func (s Snapshot) Reported() (provider.Lease, PortHealth) {
	switch a := s.Applied; {
	case !s.Lease.Held():
		return s.Lease, s.Port
	case a == nil:
		return provider.Lease{Provider: s.Lease.Provider}, PortHealth{}
	case a.SamePorts(s.Lease):
		return s.Lease, s.Port
	default:
		return *a, PortHealth{}
	}
}

// TunnelState is the tunnel's state as users see it: stopping is down.
func (s Snapshot) TunnelState() State {
	if s.State == StateStopping {
		return StateDown
	}
	return s.State
}

// PortHealth is what is known about the held port beyond "held": when it
// was last proven forwarded and how, and whether it is known dead.
type PortHealth struct {
	Verified   time.Time // last proof that the port is forwarded (zero: none yet)
	VerifiedBy string    // how: "mapping re-asserted with the gateway", "lease renewed", the outside check
	// Dead, when set, says why the held port is known not to work;
	// DeadSince is when that was first seen. Recovery is under way.
	Dead      string
	DeadSince time.Time
	// Outside is the outside check's last answer: "open", "closed" or
	// "unknown" ("" while it has not run or is off); OutsideAt when.
	Outside   string
	OutsideAt time.Time
}

// Session is one supervised run. New makes it; Run runs it until ctx ends.
type Session struct {
	tunnel Tunnel
	prov   provider.Provider
	caps   provider.Caps // prov's optional interfaces
	o      Options
	log    *slog.Logger

	reports chan provider.Lease
	control chan runRequest // SetRunning's requests
	hub     *Hub
	snap    atomic.Pointer[Snapshot]
	// check is the liveness check: Options.Probe, else the provider's
	// (providerCheck).
	check         func(ctx context.Context) (provider.Check, error)
	providerCheck bool
}

// New makes a session over a tunnel that is already configured (its first
// packet starts the handshake) and a provider that has not run yet.
func New(t Tunnel, p provider.Provider, o Options) *Session {
	o.defaults()
	s := &Session{tunnel: t, prov: p, caps: provider.CapsOf(p), o: o, log: o.Log, reports: make(chan provider.Lease), control: make(chan runRequest), hub: NewHub(o.Apply)}
	switch {
	case o.Probe != nil:
		probe := o.Probe
		s.check = func(ctx context.Context) (provider.Check, error) { return provider.Check{}, probe(ctx) }
	case s.caps.Prober != nil:
		s.check, s.providerCheck = s.caps.Prober.Probe, true
	}
	s.snap.Store(&Snapshot{State: StateConnecting, Since: time.Now(), Endpoint: t.Endpoint(), Lease: provider.Lease{Provider: o.Provider}})
	return s
}

// Snapshot returns the latest state; it never blocks on the session.
func (s *Session) Snapshot() Snapshot {
	snap := *s.snap.Load()
	snap.Applied, snap.Previous = s.hub.Applied()
	return snap
}

// Subscribe opens a subscription to every event from now on (see Hub);
// call it before Run to hear the first. The subscription closes after
// the last event of the run.
func (s *Session) Subscribe() *Subscription { return s.hub.Subscribe() }

// Note emits an event from outside the session's loop (see Hub.Note).
func (s *Session) Note(ev Event) { s.hub.Note(ev) }

// loop is Run's state, owned by its goroutine alone.
type loop struct {
	*Session
	start  time.Time
	cur    Snapshot
	wg     sync.WaitGroup // probe and rehandshake goroutines
	seen   bool           // a handshake has happened
	warned bool           // the no-handshake warning was given

	probing, rehandshaking bool
	failingOver            bool
	failoverDone           chan failoverResult
	lastFailover           time.Time     // when the last move ended (the tunnel was put on its server)
	failoverWait           time.Duration // the current wait before a move
	healthySinceMove       bool          // a port worked since the last move
	moved                  bool          // moved server: the next lease is a new port, whatever its number
	lastAlive              time.Time     // when something last came back through the tunnel
	probeOK                bool          // the check has answered at least once
	probeRx                uint64        // received bytes when the check started
	probeDone              chan probeResult
	portChecking           bool
	portCheckDone          chan portCheckResult
	nextPortCheck          time.Time
	closedCount            int       // outside checks in a row that said closed
	deadOutside            bool      // the port's death was found by the outside check
	deadActed              time.Time // when recovery last acted on a dead port
	rehandshakeDone        chan error
	fails                  int
	lastRehandshake        time.Time
	lastRx                 uint64
	lastRxAt               time.Time
	lastTx                 uint64
	provRun                provRun // the provider's current run
}

type failoverResult struct {
	detail string
	err    error
}

// Run runs the provider and supervises the tunnel until ctx ends; then it
// releases the lease (the provider's Run returns within a few seconds)
// and emits the final events. It returns the provider's error if the
// provider could not work at all.
func (s *Session) Run(ctx context.Context) error {
	l := &loop{Session: s, start: time.Now(), cur: s.Snapshot(), probeDone: make(chan probeResult, 1), rehandshakeDone: make(chan error, 1),
		failoverDone: make(chan failoverResult, 1), portCheckDone: make(chan portCheckResult, 1)}
	l.failoverWait = s.o.FailoverAfter
	l.lastRxAt = time.Now()
	sinks := s.o.Sinks
	if s.o.Store != nil {
		sinks = append(sinks, persist(s.o.Store, s.log))
	}
	var sinksDone sync.WaitGroup
	for _, sink := range sinks {
		sub := s.hub.Subscribe()
		sinksDone.Add(1)
		go func() {
			defer sinksDone.Done()
			for {
				ev, ok := sub.Next(context.Background())
				if !ok {
					return
				}
				sink(ev)
			}
		}()
	}
	defer func() {
		s.hub.Close()
		sinksDone.Wait() // each hears the final events first
	}()
	l.startProvider()
	runErr := l.serve(ctx)
	l.wg.Wait()
	l.setState(StateStopping, "")
	if err := l.stopProvider(); runErr == nil {
		runErr = err
	}
	if l.cur.Lease.Held() {
		l.cur.Lease = provider.Lease{Provider: l.cur.Lease.Provider}
		l.emit(KindLost, "released at exit")
	}
	return runErr
}

// serve is the event loop; it returns when ctx ends or the provider quits.
func (l *loop) serve(ctx context.Context) error {
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-l.control:
			req.done <- l.setRunning(ctx, req.running)
		case err := <-l.provRun.done:
			l.provRun.done <- err // stopProvider reads it again
			if err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		case lease := <-l.reports:
			l.onLease(ctx, lease)
		case r := <-l.probeDone:
			l.probing = false
			err := r.err
			l.onProbe(ctx, err)
			if err == nil {
				l.onCheck(ctx, r.check)
			}
			l.cur.FailedChecks = l.fails
			l.publish()
			if err != nil && l.cur.State == StateUp && l.fails > 0 {
				// One check lost: ask again at once rather than at the
				// next tick, so a dead tunnel is known within seconds.
				l.probe(ctx)
			}
		case r := <-l.portCheckDone:
			l.portChecking = false
			l.onPortCheck(ctx, r)
		case r := <-l.failoverDone:
			l.onFailover(ctx, r)
		case err := <-l.rehandshakeDone:
			l.rehandshaking = false
			if err != nil {
				l.log.Warn("forcing a new handshake", "err", err)
			}
			// The check's packet is what starts the new handshake: send
			// it now rather than at the next tick.
			l.probe(ctx)
		case <-tick.C:
			if l.cur.State == StateStopped {
				tick.Reset(l.o.ProbeEvery)
				continue
			}
			l.onTick(ctx)
			every := l.o.ProbeEvery
			if l.cur.State != StateUp {
				every /= 2
			}
			// A move falls due between ticks: wake for it.
			if due, _ := l.failoverDue(); !due.IsZero() {
				every = max(min(every, time.Until(due)), 10*time.Millisecond)
			}
			tick.Reset(every)
		}
	}
}

// onLease takes in a provider report.
func (l *loop) onLease(ctx context.Context, next provider.Lease) {
	prev := l.cur.Lease
	if next.Error != prev.Error {
		if next.Error != "" {
			l.log.Error("provider", "err", next.Error)
		} else if prev.Error != "" {
			l.log.Info("provider working again")
		}
	}
	note := next.Note
	next.Note = ""
	if l.o.Provider != "" {
		next.Provider = l.o.Provider
	}
	l.cur.Lease = next
	if next.Error != prev.Error {
		l.emit(KindError, next.Error)
	}
	if note != "" {
		l.cur.Remaps++
		l.emit(KindRecovery, note)
	}
	// A lease means the tunnel carries traffic, even before a check says
	// so; and the provider's own check is then to be trusted (its gateway
	// answers), even if the tunnel dies before the check first answered.
	if next.Held() && next.Error == "" && l.providerCheck {
		l.probeOK = true
	}
	if next.Held() && l.cur.State == StateConnecting {
		l.alive(ctx)
	}
	movedIP := next.PublicIP.IsValid() && prev.PublicIP.IsValid() && next.PublicIP != prev.PublicIP
	newPort := next.Held() && (!prev.Held() || !next.SamePorts(prev) || movedIP || l.moved)
	if next.Held() {
		l.moved = false
	}
	l.leaseHealth(ctx, prev, next, newPort)
	switch {
	case newPort:
		args := []any{"ports", next.PublicPorts(), "provider", next.Provider}
		if next.PublicIP.IsValid() {
			args = append(args, "public_ip", next.PublicIP.String())
		}
		if !next.Expires.IsZero() {
			args = append(args, "lease", time.Until(next.Expires).Round(time.Second).String())
		}
		if prev.Held() {
			args = append(args, "previous", prev.PublicPorts())
		}
		l.log.Info("port forwarded", args...)
		l.emit(KindPort, "")
	case !next.Held() && prev.Held():
		l.log.Warn("forwarded port lost; consumers keep their settings until a new port comes", "previous", prev.PublicPorts())
		l.emit(KindLost, "")
	case next.Held():
		l.log.Debug("lease renewed", "ports", next.PublicPorts(), "expires", next.Expires)
		l.publish()
	default:
		l.publish()
	}
}

func (l *loop) setState(st State, detail string) {
	if l.cur.State == st {
		return
	}
	l.cur.State, l.cur.Since = st, time.Now()
	l.emit(KindState, detail)
}

// emit hands the event to the hub, which numbers it and passes it on in
// order, and updates the snapshot before the event can reach anyone (the
// data plane's Apply, a consumer, a status request they answer).
func (l *loop) emit(k Kind, detail string) {
	if k == KindRecovery {
		l.cur.LastRecovery = detail
	}
	ev := Event{Kind: k, At: time.Now(), State: l.cur.State, Lease: l.cur.Lease, Health: l.cur.Port, Detail: detail}
	l.hub.emit(ev, func(seq uint64) {
		l.cur.Seq = seq
		l.publish()
	})
}

func (l *loop) publish() {
	snap := l.cur
	l.snap.Store(&snap)
}
