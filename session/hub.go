package session

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vpnfwd/vpnfwd/provider"
)

// The pipeline from the session to every consumer: two queues at most.
//
//	loop (or Note) ─► the apply stage's queue ─► Options.Apply (the data
//	plane moves the port) ─► the applied lease is recorded ─► each
//	subscription's own queue ─► its consumer, on its own goroutine
//
// The rule, for every queue alike: bounded (queueSize), ordered, and when
// a consumer has fallen queueSize events behind the oldest event that a
// later one supersedes is dropped. Every event carries the whole lease
// and port health, so a slow consumer may miss steps, never hears an
// older port after a newer one, and always hears the last. But only a
// port or lost event moves the port (the data plane applies those, a
// publisher publishes those) and only a reconnect re-applies it: such an
// event gives way to a later one that does as much (superseded), never
// to a flood of others (publish outcomes, health), which go first.
// A consumer that needs to know what it gave up (publish: a port-lost
// hook) keeps what it last heard itself, not what others applied.
const queueSize = 64

// Hub is the pipeline: it numbers events, runs the apply stage on a
// goroutine of its own, keeps the applied lease, and hands every event to
// every subscription. The session's loop and Note emit into it; nothing
// in it waits on a consumer.
type Hub struct {
	applyFn func(Event)
	stage   *Subscription // the apply stage's queue
	done    chan struct{} // the apply stage ended

	mu     sync.Mutex
	seq    uint64
	subs   map[*Subscription]struct{}
	closed bool

	applied atomic.Pointer[applied]
}

// applied is what the data plane serves and what it served before; next
// is closed once the lease applied after it (later) is recorded, so that
// a waiter walks every lease the plane served, none skipped.
type applied struct {
	now, previous *provider.Lease
	later         *applied
	next          chan struct{}
}

// NewHub starts a pipeline whose apply stage runs apply (nil: none) before
// the subscriptions hear each event.
func NewHub(apply func(Event)) *Hub {
	h := &Hub{applyFn: apply, stage: newSubscription(nil), done: make(chan struct{}), subs: map[*Subscription]struct{}{}}
	h.applied.Store(&applied{next: make(chan struct{})})
	go h.run()
	return h
}

// Subscribe opens a subscription: its own bounded queue of every event
// from now on, in order. Close it when done. On a closed hub it is closed
// at once.
func (h *Hub) Subscribe() *Subscription {
	s := newSubscription(h)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.close() // Wake has the token that says so
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Note emits an event that does not come from the session's loop (a
// publisher's outcome, the apps' mappings): numbered and ordered with
// the loop's own. It never blocks.
func (h *Hub) Note(ev Event) { h.emit(ev, nil) }

// emit numbers ev and queues it for the apply stage. numbered (may be
// nil) hears the number first, before anyone can hear the event: the
// session stores its snapshot there, so neither the data plane nor a
// consumer ever hears an event the snapshot does not show yet. It must
// not block (it runs under h.mu).
func (h *Hub) emit(ev Event, numbered func(seq uint64)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.seq++
		ev.Seq = h.seq
	}
	if numbered != nil {
		numbered(h.seq)
	}
	if !h.closed {
		h.stage.send(ev)
	}
}

// run is the apply stage: the data plane applies each event, the lease
// it now serves is recorded (status reports a port only once it works,
// never in the moment between the session taking it and the plane
// applying it), then every subscription hears the event.
func (h *Hub) run() {
	defer close(h.done)
	for {
		ev, ok := h.stage.Next(context.Background())
		if !ok {
			return
		}
		if h.applyFn != nil {
			h.applyFn(ev)
		}
		if ev.Kind == KindPort || ev.Kind == KindLost {
			old := h.applied.Load()
			l := ev.Lease
			old.later = &applied{now: &l, previous: old.now, next: make(chan struct{})}
			h.applied.Store(old.later)
			close(old.next)
			if prev := old.now; prev != nil && prev.Held() && !prev.SamePorts(l) {
				ev.Released = prev.PublicPorts()
			}
		}
		h.mu.Lock()
		for s := range h.subs {
			s.send(ev)
		}
		h.mu.Unlock()
	}
}

// Close lets the apply stage finish what is queued, then closes every
// subscription (each still hears what is queued for it); it waits for
// the apply stage only. A session's Run closes its hub after the run's
// last event; a test of consumers closes its own.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.stage.Close()
	<-h.done
	h.mu.Lock()
	for s := range h.subs {
		s.close()
	}
	h.mu.Unlock()
}

// Applied is the lease the data plane last applied (nil: none yet) and
// the one before it.
func (h *Hub) Applied() (now, previous *provider.Lease) {
	a := h.applied.Load()
	return a.now, a.previous
}

// Served is a place in the run of leases the data plane serves: Wait
// from it sees every lease applied after it, however quickly the next
// follows.
type Served struct {
	h *Hub
	a *applied
}

// Served is the place now: take it before the event Wait is to see.
func (h *Hub) Served() Served { return Served{h, h.applied.Load()} }

// Wait waits until the data plane serves a lease ok accepts, at this place
// or after it (true), or ctx ends or the hub stops first (false): what
// asks the outside world about a port asks once the port is served.
func (s Served) Wait(ctx context.Context, ok func(provider.Lease) bool) bool {
	a := s.a
	for {
		if a.now != nil && ok(*a.now) {
			return true
		}
		select {
		case <-a.next:
			a = a.later
		case <-ctx.Done():
			return false
		case <-s.h.done:
			// Nothing more is applied: what is recorded is all there is.
			for {
				select {
				case <-a.next:
					a = a.later
					if a.now != nil && ok(*a.now) {
						return true
					}
				default:
					return false
				}
			}
		}
	}
}

// Subscription is one consumer's queue (see the rule above).
type Subscription struct {
	hub    *Hub
	mu     sync.Mutex
	queue  []Event
	wake   chan struct{} // one token: the queue has events, or it closed
	closed bool
}

func newSubscription(h *Hub) *Subscription {
	return &Subscription{hub: h, wake: make(chan struct{}, 1)}
}

// send queues ev; it never blocks.
func (s *Subscription) send(ev Event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, ev)
	if len(s.queue) > queueSize {
		s.queue = dropOne(s.queue)
	}
	s.mu.Unlock()
	s.poke()
}

// dropOne drops the oldest event of q that a later one supersedes.
func dropOne(q []Event) []Event {
	for i, e := range q {
		if superseded(e, q[i+1:]) {
			return slices.Delete(q, i, i+1)
		}
	}
	return slices.Delete(q, 0, 1) // not reached: see superseded
}

// superseded says whether e may give way to the events queued after it:
// a port or lost event to a later port or lost event, a reconnect to a
// later port, lost or reconnect, any other event always. The newest port
// or lost event and the newest reconnect are never superseded, so a full
// queue (queueSize > 2) always has one to drop.
func superseded(e Event, later []Event) bool {
	var by []Kind
	switch e.Kind {
	case KindPort, KindLost:
		by = []Kind{KindPort, KindLost}
	case KindReconnect:
		by = []Kind{KindPort, KindLost, KindReconnect}
	default:
		return true
	}
	return slices.ContainsFunc(later, func(x Event) bool { return slices.Contains(by, x.Kind) })
}

func (s *Subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// close ends the subscription once its queue is read.
func (s *Subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.poke()
}

// Close ends the subscription: the hub stops queueing for it.
func (s *Subscription) Close() {
	if s.hub != nil {
		s.hub.mu.Lock()
		delete(s.hub.subs, s)
		s.hub.mu.Unlock()
	}
	s.close()
}

// Wake has a token whenever the queue may have changed: an event came or
// the subscription closed. Read with TryNext.
func (s *Subscription) Wake() <-chan struct{} { return s.wake }

// TryNext takes the oldest queued event; ok is false when none is
// queued, and done is true when none ever will be (closed and read).
func (s *Subscription) TryNext() (ev Event, ok, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return Event{}, false, s.closed
	}
	ev = s.queue[0]
	s.queue = slices.Delete(s.queue, 0, 1)
	if len(s.queue) > 0 || s.closed {
		s.poke() // the reader comes back for the rest, or for the end
	}
	return ev, true, false
}

// Next waits for the oldest queued event; false when ctx ends or the
// subscription is closed and read.
func (s *Subscription) Next(ctx context.Context) (Event, bool) {
	for {
		ev, ok, done := s.TryNext()
		if ok {
			return ev, true
		}
		if done {
			s.poke() // the next Next sees it too
			return Event{}, false
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return Event{}, false
		}
	}
}
