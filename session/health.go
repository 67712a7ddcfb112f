package session

import (
	"context"
	"fmt"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// The tunnel's health: liveness checks, the passive rule on the counters,
// and the recovery steps (a forced handshake, a fresh key). All of it runs
// on the session's goroutine; the slow parts (a check, a handshake, a key
// registration) run on goroutines it owns and report back by channel.

// onTick reads the counters and starts a liveness check.
func (l *loop) onTick(ctx context.Context) {
	st, ok := l.readStats()
	if ok && (l.check == nil || !l.probeOK) {
		// No check, or one that never answered (a DNS server that drops
		// queries): the counters decide.
		l.passive(ctx, st)
	}
	l.probe(ctx)
	l.portHealthTick(ctx)
	l.publish()
}

// probeResult is a liveness check's answer.
type probeResult struct {
	check provider.Check
	err   error
}

// probe starts a liveness check unless one is under way.
func (l *loop) probe(ctx context.Context) {
	if l.check == nil || l.probing {
		return
	}
	l.probing = true
	l.probeRx = l.cur.Tunnel.RxBytes
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(ctx, l.o.ProbeTimeout)
		defer cancel()
		c, err := l.check(ctx)
		l.probeDone <- probeResult{c, err}
	}()
}

// readStats takes in the tunnel's counters (and logs the first
// handshake); ok is false when they could not be read.
func (l *loop) readStats() (tunnel.Stats, bool) {
	st, err := l.tunnel.Stats()
	if err != nil {
		return st, false
	}
	l.cur.Tunnel = st
	l.cur.Endpoint = l.tunnel.Endpoint()
	if !st.LastHandshake.IsZero() && !l.seen {
		l.seen = true
		from := l.start
		if !l.lastFailover.IsZero() {
			from = l.lastFailover
		}
		l.log.Info("handshake complete", "endpoint", st.Endpoint, "after", time.Since(from).Round(time.Millisecond).String())
	}
	if !l.seen && !l.warned && time.Since(l.start) > 10*time.Second {
		l.warned = true
		l.log.Warn("no WireGuard handshake yet; is the endpoint reachable and the key accepted by the server?", "endpoint", l.tunnel.Endpoint().String())
	}
	return st, true
}

// passive is the liveness rule with no probe: sent but nothing received
// for StallAfter means down; a handshake and traffic back mean up.
func (l *loop) passive(ctx context.Context, st tunnel.Stats) {
	now := time.Now()
	if st.RxBytes < l.lastRx || st.TxBytes < l.lastTx { // the peer was re-created
		l.lastRx, l.lastTx = 0, 0
	}
	if st.RxBytes > l.lastRx {
		l.lastRxAt = now
	}
	sentUnanswered := st.TxBytes > l.lastTx && st.RxBytes == l.lastRx
	l.lastRx, l.lastTx = st.RxBytes, st.TxBytes
	switch {
	case l.cur.State == StateUp && sentUnanswered && now.Sub(l.lastRxAt) > l.o.StallAfter:
		l.failed(ctx, fmt.Errorf("nothing received for %s", now.Sub(l.lastRxAt).Round(time.Second)))
	case l.cur.State != StateUp && !st.LastHandshake.IsZero() && now.Sub(l.lastRxAt) < l.o.StallAfter:
		l.alive(ctx)
	}
}

func (l *loop) onProbe(ctx context.Context, err error) {
	if err == nil {
		l.probeOK = true
		l.alive(ctx)
		return
	}
	l.cur.ProbeFailures++
	if !l.probeOK {
		return // not trusted yet: the counters decide
	}
	// Traffic came back while the check waited: the tunnel works.
	if st, ok := l.readStats(); ok && st.RxBytes > l.probeRx {
		l.alive(ctx)
		return
	}
	l.failed(ctx, err)
}

// alive: something came back through the tunnel.
func (l *loop) alive(ctx context.Context) {
	l.fails = 0
	l.lastAlive = time.Now()
	if l.cur.State != StateUp {
		l.readStats()
	}
	switch l.cur.State {
	case StateConnecting:
		l.setState(StateUp, "")
	case StateDown:
		outage := time.Since(l.cur.DownSince).Round(100 * time.Millisecond)
		l.cur.DownSince = time.Time{}
		l.cur.Recoveries++
		l.log.Info("tunnel up again", "down_for", outage.String())
		l.setState(StateUp, "")
		l.emit(KindRecovery, "tunnel back after "+outage.String())
		if l.cur.Lease.Held() {
			l.emit(KindReconnect, "")
		}
		if r := l.caps.Refresher; r != nil {
			r.Refresh()
		}
		l.portCheckSoon(ctx)
	}
}

// failed: a liveness check (or the passive rule) says nothing comes back.
func (l *loop) failed(ctx context.Context, err error) {
	l.fails++
	if l.fails < l.o.DownAfter {
		return
	}
	if l.cur.State == StateUp {
		l.cur.DownSince = time.Now()
		l.log.Warn("tunnel down: nothing comes back through it; forcing a new handshake", "endpoint", l.tunnel.Endpoint().String(), "err", err)
		l.setState(StateDown, err.Error())
	}
	if l.maybeFailover(ctx) {
		return
	}
	if !l.rehandshaking && !l.failingOver && time.Since(l.lastRehandshake) >= l.o.RehandshakeEvery {
		l.rehandshake(ctx)
	}
}

// rehandshake makes the tunnel start over, off the loop (resolving the
// endpoint may take a while).
func (l *loop) rehandshake(ctx context.Context) {
	l.rehandshaking = true
	l.lastRehandshake = time.Now()
	l.cur.Rehandshakes++
	l.emit(KindRecovery, "new handshake forced (endpoint resolved again)")
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.rehandshakeDone <- l.tunnel.Rehandshake(ctx)
	}()
}
