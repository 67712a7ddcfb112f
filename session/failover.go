package session

import (
	"context"
	"time"
)

// Server failover: when the tunnel stays down, the held port stays dead,
// or no port can be had, for FailoverAfter, the session moves the tunnel
// to the next server (Options.Failover: the next wg-quick file, or PIA's
// next server with a fresh key). On the new server the same rule applies;
// while no server has worked since the last move the wait doubles (up to
// maxFailoverWait), so a dead link of one's own does not make vpnfwd spin
// round the list. It never moves back by itself. All of it runs on the
// session's goroutine; the move runs on a goroutine it owns.

const maxFailoverWait = 2 * time.Minute

// failoverDue says when the session should move if nothing changes, and
// why (zero time: no move pending): what has been wrong since the later of
// when it began (for a dead tunnel: its last sign of life) and the end of
// the last move, plus the current wait. Counting from the end, not the
// start, gives each server its whole wait even when the move itself was
// slow (a fresh PIA key on a busy machine): counted from the start, a move
// longer than the wait left the new server no time at all, and the session
// moved again before its first handshake.
func (l *loop) failoverDue() (time.Time, string) {
	if l.o.Failover == nil || l.failingOver {
		return time.Time{}, ""
	}
	from := func(t time.Time) time.Time {
		if l.lastFailover.After(t) {
			t = l.lastFailover
		}
		return t.Add(l.failoverWait)
	}
	switch {
	case l.cur.State == StateDown:
		// Counted from the last sign of life, not from when the checks
		// declared it down (two failed checks, 2-4 s later).
		return from(l.lastAlive), "nothing has come back through the tunnel since " + l.lastAlive.Format(time.TimeOnly)
	case l.cur.State == StateConnecting && !l.seen:
		return from(l.start), "no handshake yet"
	case l.cur.State != StateUp:
	case l.cur.Lease.Held() && l.cur.Port.Dead != "":
		return from(l.cur.Port.DeadSince), "the port is dead: " + l.cur.Port.Dead
	case !l.cur.Lease.Held() && l.cur.Lease.Error != "":
		return from(l.cur.Since), "no port could be had: " + l.cur.Lease.Error
	}
	return time.Time{}, ""
}

// failoverReason says why the session should move now ("" if not yet).
func (l *loop) failoverReason() string {
	due, why := l.failoverDue()
	if due.IsZero() || time.Now().Before(due) {
		return ""
	}
	return why
}

// maybeFailover starts a move when one is due; it reports whether it did.
func (l *loop) maybeFailover(ctx context.Context) bool {
	why := l.failoverReason()
	if why == "" {
		return false
	}
	l.failingOver = true
	if !l.healthySinceMove && !l.lastFailover.IsZero() {
		l.failoverWait = min(2*l.failoverWait, maxFailoverWait)
	}
	l.healthySinceMove = false
	l.lastFailover = time.Now() // counted again from the end of the move
	l.log.Warn("moving to the next server", "why", why)
	l.emit(KindRecovery, "moving to the next server: "+why)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		detail, err := l.o.Failover.Move(ctx)
		l.failoverDone <- failoverResult{detail, err}
	}()
	return true
}

// onFailover takes in a finished move.
func (l *loop) onFailover(ctx context.Context, r failoverResult) {
	l.failingOver = false
	l.lastFailover = time.Now() // the server in use gets its whole wait from now
	if r.err != nil {
		l.log.Warn("moving to the next server", "err", r.err)
		l.emit(KindRecovery, "moving to the next server failed: "+r.err.Error())
		return
	}
	l.cur.Failovers++
	l.moved = true
	l.cur.Endpoint = l.tunnel.Endpoint()
	l.seen = false // the new server's first handshake is logged
	if l.cur.Lease.Held() {
		// The old server's port means nothing here; the provider maps a
		// new one, which consumers hear as a port change.
		l.cur.Port.Dead, l.cur.Port.DeadSince = "moved to another server; getting a port there", time.Now()
	}
	l.log.Info("moved to the next server", "detail", r.detail)
	l.emit(KindRecovery, "moved to the next server: "+r.detail)
	l.probe(ctx) // its packet starts the handshake
}

// noteHealthy records that the tunnel works with a live port: the next
// move, if any, waits FailoverAfter again.
func (l *loop) noteHealthy() {
	if l.cur.State == StateUp && l.cur.Lease.Held() && l.cur.Port.Dead == "" {
		l.healthySinceMove = true
		l.failoverWait = l.o.FailoverAfter
	}
}
