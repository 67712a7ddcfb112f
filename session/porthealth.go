package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// The port's health, apart from the tunnel's: a held port is "verified"
// when something proved it forwarded (the gateway re-asserted the
// mapping, the provider renewed it, an outside checker reached it), and
// "dead" when something proved it is not (the gateway forgot it or
// refused it, the outside checker found it closed twice, the lease expired
// while the provider could not renew). A dead port makes recovery act:
// map again at once, then a fresh handshake, again while it stays dead.
// All of it runs on the session's goroutine.

// Recovery steps for a dead port: the provider maps again at once; if the
// port is still dead after deadRehandshakeAfter, a fresh handshake; both
// again every deadRetryEvery while it stays dead.
const (
	deadRehandshakeAfter = 3 * time.Second
	deadRetryEvery       = 30 * time.Second
)

// ErrServiceDown, from Options.PortCheck, says the checker's connection
// reached vpnfwd through the tunnel but the local service refused it: the
// port is forwarded, the service is down (not a reason to move).
var ErrServiceDown = errors.New("the checker reached vpnfwd, but the local service refused the connection")

// errNotApplied: the data plane did not serve the port within the
// check's time (or the run ended); nothing was asked.
var errNotApplied = errors.New("the port was not served; not checked")

// portCheckResult is an outside check's answer for one port.
type portCheckResult struct {
	port uint16
	open bool
	err  error
}

// leaseHealth updates the port's health from a provider report.
func (l *loop) leaseHealth(ctx context.Context, prev, next provider.Lease, newPort bool) {
	h := &l.cur.Port
	switch {
	case !next.Held():
		*h = PortHealth{}
		l.closedCount, l.deadOutside = 0, false
		return
	case newPort:
		// A new port: what was known of the old one says nothing.
		if h.Dead != "" {
			l.log.Info("a new port replaces the dead one", "ports", next.PublicPorts())
		}
		*h = PortHealth{}
		l.closedCount, l.deadOutside = 0, false
		l.portCheckSoon(ctx)
	}
	if next.Error == "" && !next.Renewed.IsZero() && next.Renewed.After(prev.Renewed) {
		l.verified("lease renewed with the provider", false)
	}
	l.expiryHealth(ctx)
}

// expiryHealth: a lease the provider could not renew and that has expired
// is dead.
func (l *loop) expiryHealth(ctx context.Context) {
	ls := l.cur.Lease
	if ls.Held() && ls.Error != "" && !ls.Expires.IsZero() && time.Now().After(ls.Expires) {
		l.dead(ctx, "the lease expired and the provider cannot renew it: "+ls.Error)
	}
}

// onCheck takes in what a liveness check proved about the port.
func (l *loop) onCheck(ctx context.Context, c provider.Check) {
	if !l.cur.Lease.Held() {
		return
	}
	switch {
	case c.Dead != "":
		l.dead(ctx, c.Dead)
	case c.Verified:
		l.verified(c.Method, false)
	}
}

// onPortCheck takes in the outside checker's answer.
func (l *loop) onPortCheck(ctx context.Context, r portCheckResult) {
	h := &l.cur.Port
	ports := l.cur.Lease.PublicPorts()
	if len(ports) == 0 || ports[0] != r.port {
		// About a port no longer held: the one held now was not checked
		// while this check ran.
		l.portCheckSoon(ctx)
		return
	}
	if errors.Is(r.err, errNotApplied) {
		// Nothing was asked: nothing is known, and the check comes again.
		l.log.Info("outside port check: the port was not served yet; asking later", "port", r.port)
		l.nextPortCheck = time.Now().Add(l.o.PortCheckRecheck)
		return
	}
	h.OutsideAt = time.Now()
	switch {
	case errors.Is(r.err, ErrServiceDown):
		// The checker's connection came through the tunnel to vpnfwd:
		// the port is forwarded; the local service is what failed.
		h.Outside = "service down"
		l.closedCount = 0
		l.log.Warn("outside port check: the port is forwarded, but the local service refused the connection", "port", r.port)
		l.verified(l.o.PortCheckName+" (reached vpnfwd; the local service refused)", true)
		l.nextPortCheck = time.Now().Add(l.o.PortCheckRecheck)
	case r.err != nil:
		h.Outside = "unknown"
		l.log.Info("outside port check: no answer, so nothing is known (not taken for closed)", "port", r.port, "err", r.err)
		l.nextPortCheck = time.Now().Add(l.o.PortCheckEvery)
	case r.open:
		h.Outside = "open"
		l.closedCount = 0
		l.verified(l.o.PortCheckName, true)
		l.nextPortCheck = time.Now().Add(l.o.PortCheckEvery)
	default:
		h.Outside = "closed"
		l.closedCount++
		l.nextPortCheck = time.Now().Add(l.o.PortCheckRecheck)
		if l.closedCount >= 2 {
			l.dead(ctx, fmt.Sprintf("the %s found port %d closed %d times in a row", l.o.PortCheckName, r.port, l.closedCount))
			l.deadOutside = true
		} else {
			l.log.Warn("outside port check: closed; asking again before taking the port for dead", "port", r.port, "again_in", l.o.PortCheckRecheck.String())
		}
	}
	l.publish()
}

// verified records a proof that the held port is forwarded; outside
// says it came from the internet side. A port the outside check found
// dead stays dead until the outside check (or a new port) says otherwise:
// the gateway's word that it keeps the mapping does not outweigh a
// checker that could not get through.
func (l *loop) verified(how string, outside bool) {
	h := &l.cur.Port
	h.Verified, h.VerifiedBy = time.Now(), how
	if h.Dead == "" || (l.deadOutside && !outside) {
		return
	}
	l.deadOutside = false
	l.log.Info("forwarded port works again", "ports", l.cur.Lease.PublicPorts(), "how", how, "dead_for", time.Since(h.DeadSince).Round(100*time.Millisecond).String())
	h.Dead, h.DeadSince = "", time.Time{}
	l.closedCount = 0
	l.cur.Recoveries++
	l.emit(KindHealth, "verified: "+how)
}

// dead records that the held port is known not to work, and acts.
func (l *loop) dead(ctx context.Context, why string) {
	h := &l.cur.Port
	if h.Dead != "" {
		h.Dead = why
		return
	}
	h.Dead, h.DeadSince = why, time.Now()
	l.log.Warn("forwarded port is dead; mapping again", "ports", l.cur.Lease.PublicPorts(), "why", why)
	l.emit(KindHealth, "dead: "+why)
	l.remap(ctx)
}

// remap asks the provider for the port again at once.
func (l *loop) remap(ctx context.Context) {
	l.deadActed = time.Now()
	if r := l.caps.Refresher; r != nil {
		r.Refresh()
	}
	l.emit(KindRecovery, "port dead: asking the provider again")
	l.portCheckSoon(ctx)
}

// portHealthTick runs every tick: lease expiry, recovery of a dead port,
// and the outside check when due.
func (l *loop) portHealthTick(ctx context.Context) {
	l.expiryHealth(ctx)
	l.noteHealthy()
	if l.maybeFailover(ctx) {
		return
	}
	h := &l.cur.Port
	if h.Dead != "" && l.cur.State == StateUp {
		since := time.Since(h.DeadSince)
		switch {
		case since >= deadRehandshakeAfter && l.deadActed.Sub(h.DeadSince) < deadRehandshakeAfter && !l.rehandshaking:
			l.log.Warn("forwarded port still dead: forcing a new handshake", "why", h.Dead, "dead_for", since.Round(100*time.Millisecond).String())
			l.deadActed = time.Now()
			l.rehandshake(ctx)
		case time.Since(l.deadActed) >= deadRetryEvery:
			l.remap(ctx)
		}
	}
	l.maybePortCheck(ctx)
}

// portCheckSoon makes the outside check run now (after a new port or a
// recovery), if there is one.
func (l *loop) portCheckSoon(ctx context.Context) {
	l.nextPortCheck = time.Time{}
	l.maybePortCheck(ctx)
}

// maybePortCheck starts the outside check, off the loop, when it is due.
func (l *loop) maybePortCheck(ctx context.Context) {
	if l.o.PortCheck == nil || l.portChecking || !l.cur.Lease.Held() || l.cur.State != StateUp || time.Now().Before(l.nextPortCheck) {
		return
	}
	lease := l.cur.Lease
	// Taken here, on the loop, before a new port's event is emitted.
	served := l.hub.Served()
	l.portChecking = true
	l.nextPortCheck = time.Now().Add(l.o.PortCheckEvery)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// Asked before the data plane serves the port, the checker would
		// find it closed: a new port is checked once it is applied (the
		// loop may not even have emitted it yet).
		if !served.Wait(ctx, lease.SamePorts) {
			l.portCheckDone <- portCheckResult{port: lease.PublicPorts()[0], err: errNotApplied}
			return
		}
		open, err := l.o.PortCheck(ctx, lease)
		l.portCheckDone <- portCheckResult{port: lease.PublicPorts()[0], open: open, err: err}
	}()
}
