package netstack

import (
	"container/list"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/waiter"
)

// admission bounds the handshakes in progress, overall and per source
// address: each holds a goroutine and a half-open endpoint until the peer
// answers or the handshake times out.
//
// Over the per-source bound a SYN is ignored. Over the overall bound the
// oldest half-open handshake is aborted to make room, as a SYN queue under
// attack drops its oldest entry: a spoofed flood keeps churning its own
// entries, while a real peer's handshake, which completes in one round
// trip, gets through.
type admission struct {
	max, perSource int
	timeout        time.Duration
	mu             sync.Mutex
	pending        *list.List // of *TCPRequest, oldest first
	bySource       map[netip.Addr]int
	// failedFrom remembers, for suspectFor, the sources whose handshakes
	// failed (a scanner's RST after our SYN-ACK): at most maxSuspects.
	failedFrom map[netip.Addr]time.Time
	lastSweep  time.Time
	dropped    atomic.Uint64 // SYNs ignored for being over a limit
	failed     atomic.Uint64 // handshakes that never completed
	evicted    atomic.Uint64 // half-open handshakes aborted for room
}

// crowdedAt is how many pending handshakes make the stack "crowded".
const crowdedAt = 16

// A source whose handshake failed stays suspect (crowded) this long, so a
// scanner's SYN-then-RST costs the service one connection, not one each.
const (
	suspectFor  = 10 * time.Second
	maxSuspects = 4096
)

func newAdmission(max, perSource int, timeout time.Duration) *admission {
	return &admission{max: max, perSource: perSource, timeout: timeout, pending: list.New(), bySource: map[netip.Addr]int{},
		failedFrom: map[netip.Addr]time.Time{}}
}

// admit takes q in among the pending handshakes, or reports that it must
// be ignored.
func (a *admission) admit(q *TCPRequest) bool {
	src := q.remote.Addr()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bySource[src] >= a.perSource {
		a.dropped.Add(1)
		return false
	}
	// Aborted handshakes leave the list only when their goroutines run;
	// under a flood that lags, so the list may pass max, never 2×max.
	if a.pending.Len() >= 2*a.max || a.pending.Len() >= a.max && !a.abortOldestLocked() {
		a.dropped.Add(1)
		return false
	}
	q.slot = a.pending.PushBack(q)
	a.bySource[src]++
	return true
}

// abortOldestLocked wakes the oldest handshake in progress with nothing to
// show: gVisor then finds it unconnected, closes it and Accept fails. It
// leaves the list when its goroutine answers, a moment later.
func (a *admission) abortOldestLocked() bool {
	for e := a.pending.Front(); e != nil; e = e.Next() {
		if q := e.Value.(*TCPRequest); q.wq != nil && !q.aborted {
			q.aborted = true
			abortLocked(q)
			a.evicted.Add(1)
			return true
		}
	}
	return false
}

// abortLocked wakes q's handshake, if it is waiting, so that it fails.
// Waking it again (a timeout after an eviction) is harmless.
func abortLocked(q *TCPRequest) {
	if q.wq != nil {
		q.wq.Notify(waiter.WritableEvents)
	}
}

// abortAll fails every handshake in progress (the stack is closing).
func (a *admission) abortAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for e := a.pending.Front(); e != nil; e = e.Next() {
		abortLocked(e.Value.(*TCPRequest))
	}
}

// handshaking returns the wait queue for q's handshake, makes the
// handshake abortable, and aborts it if it is not done within the
// timeout; stop (call it when the handshake is over) cancels that.
func (a *admission) handshaking(q *TCPRequest) (wq *waiter.Queue, stop func() bool) {
	wq = new(waiter.Queue)
	a.mu.Lock()
	q.wq = wq
	a.mu.Unlock()
	t := time.AfterFunc(a.timeout, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		abortLocked(q)
	})
	return wq, t.Stop
}

// done gives q's place back.
func (a *admission) done(q *TCPRequest) {
	src := q.remote.Addr()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending.Remove(q.slot)
	q.slot, q.wq = nil, nil
	if a.bySource[src]--; a.bySource[src] <= 0 {
		delete(a.bySource, src)
	}
}

func (a *admission) crowded(src netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.failedFrom[src]; ok && time.Since(t) < suspectFor {
		return true
	}
	return a.pending.Len() > crowdedAt || a.bySource[src] > 1
}

// handshakeFailed counts a handshake src never completed and makes src
// suspect for a while.
func (a *admission) handshakeFailed(src netip.Addr) {
	a.failed.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if len(a.failedFrom) >= maxSuspects && now.Sub(a.lastSweep) > time.Second {
		a.lastSweep = now
		for s, t := range a.failedFrom {
			if now.Sub(t) >= suspectFor {
				delete(a.failedFrom, s)
			}
		}
	}
	if len(a.failedFrom) < maxSuspects {
		a.failedFrom[src] = now
	}
}

// Stats are the stack's counters of incoming TCP handshakes and UDP drops.
type Stats struct {
	PendingHandshakes int    // SYNs received, handshake not finished
	DroppedSYN        uint64 // SYNs ignored for being over a limit
	EvictedHandshakes uint64 // half-open handshakes aborted to make room
	FailedHandshakes  uint64 // accepted SYNs whose peer never completed (RST, timeout)
	UDPDropped        uint64 // UDP datagrams dropped at a full socket receive buffer
}

// Stats returns the counters.
func (s *Stack) Stats() Stats {
	s.adm.mu.Lock()
	p := s.adm.pending.Len()
	s.adm.mu.Unlock()
	return Stats{PendingHandshakes: p, DroppedSYN: s.adm.dropped.Load(),
		EvictedHandshakes: s.adm.evicted.Load(), FailedHandshakes: s.adm.failed.Load(),
		UDPDropped: s.stack.Stats().UDP.ReceiveBufferErrors.Value()}
}
