package forward

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// bridged is one bridged TCP connection: the tunnel side and the local
// side, and when bytes last moved either way.
type bridged struct {
	peer          netip.Addr
	remote, local net.Conn
	active        atomic.Int64 // unix nanoseconds of the last byte moved
	once          sync.Once
}

func (c *bridged) touch() { c.active.Store(time.Now().UnixNano()) }

func (c *bridged) idle(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, c.active.Load()))
}

// close ends both sides; the splice copying them returns.
func (c *bridged) close() {
	c.once.Do(func() {
		c.remote.Close()
		c.local.Close()
	})
}

// connTable holds the bridged TCP connections within two bounds: overall
// and per remote address. A new connection over a bound makes room by
// closing the connection idle the longest (overall, or from the same
// address): a peer that holds connections open without using them cannot
// lock newcomers out, and an active transfer is the last thing to go.
type connTable struct {
	max, perSource int
	mu             sync.Mutex
	conns          map[*bridged]struct{}
	bySource       map[netip.Addr]int
	closed         bool
	evicted        atomic.Int64
}

func newConnTable(max, perSource int) *connTable {
	return &connTable{max: max, perSource: perSource, conns: map[*bridged]struct{}{}, bySource: map[netip.Addr]int{}}
}

// add registers c, evicting to stay within bounds. It returns false (and
// leaves c alone) once the table is closed.
func (t *connTable) add(c *bridged) bool {
	c.touch()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.bySource[c.peer] >= t.perSource {
		t.evictLocked(func(o *bridged) bool { return o.peer == c.peer })
	}
	if len(t.conns) >= t.max {
		t.evictLocked(func(*bridged) bool { return true })
	}
	t.conns[c] = struct{}{}
	t.bySource[c.peer]++
	return true
}

// evictLocked closes the idlest connection that match accepts.
func (t *connTable) evictLocked(match func(*bridged) bool) {
	var victim *bridged
	var oldest int64
	for o := range t.conns {
		if a := o.active.Load(); match(o) && (victim == nil || a < oldest) {
			victim, oldest = o, a
		}
	}
	if victim != nil {
		t.removeLocked(victim)
		victim.close()
		t.evicted.Add(1)
	}
}

func (t *connTable) remove(c *bridged) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(c)
}

func (t *connTable) removeLocked(c *bridged) {
	if _, ok := t.conns[c]; !ok {
		return
	}
	delete(t.conns, c)
	if t.bySource[c.peer]--; t.bySource[c.peer] <= 0 {
		delete(t.bySource, c.peer)
	}
}

func (t *connTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// closeIdle closes the connections idle for longer than limit.
func (t *connTable) closeIdle(limit time.Duration) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		if c.idle(now) > limit {
			t.removeLocked(c)
			c.close()
		}
	}
}

// closeAll closes every connection and refuses new ones.
func (t *connTable) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.conns {
		t.removeLocked(c)
		c.close()
	}
}
