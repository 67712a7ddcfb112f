// Package publish tells consumers about the forwarded port: a file, a hook
// command, torrent clients. Each consumer is a Publisher around its own
// subscription to the session's events: it hears every change in order,
// on its own goroutine, so a slow one holds up no other, and a failed
// publish is retried. Port 0 is never published.
package publish

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/status"
)

// Consumer is one place the port goes. It hears the session's events of
// kind port (a new port), lost (no ports: it must not write or push a
// port then), reconnect (the tunnel came back with the same port:
// re-apply it) and check (a Checker's periodic re-check); ev.Ports() has
// no 0, and ev.Released is what this consumer last heard and is now
// given up.
type Consumer interface {
	Name() string
	Publish(ctx context.Context, ev session.Event) error
}

// Publisher is publishing with retry, wrapped around one consumer's
// subscription to the session's events: Run delivers them in order,
// retries a failed one with backoff until it succeeds or a newer event
// replaces it, and gives a Checker the last good port again every
// CheckEvery.
type Publisher struct {
	c        Consumer
	log      *slog.Logger
	onResult func(status.Consumer)
	mu       sync.Mutex
	res      status.Consumer
}

// NewPublisher wraps c; onResult (may be nil) hears each outcome, as
// status shows it.
func NewPublisher(c Consumer, log *slog.Logger, onResult func(status.Consumer)) *Publisher {
	return &Publisher{c: c, log: log, onResult: onResult, res: status.Consumer{Consumer: c.Name()}}
}

// Result is the consumer's last outcome.
func (p *Publisher) Result() status.Consumer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}

// Checker is a consumer that also wants the current port re-checked
// periodically (a torrent client that may have restarted with a stale
// setting). It gets an event of kind check.
type Checker interface {
	Consumer
	CheckEvery() time.Duration
}

// RetryAfter is an error that tells the publisher how long to wait before
// trying again (a login that failed: retrying soon would get the address
// banned).
type RetryAfter struct {
	Err   error
	Delay time.Duration
}

func (e *RetryAfter) Error() string { return e.Err.Error() }
func (e *RetryAfter) Unwrap() error { return e.Err }

// Backoff bounds the retries of a failed publish: 1 s doubling to 1 min.
var (
	firstRetry = time.Second
	maxRetry   = time.Minute
)

// Run delivers sub's events until ctx ends, or sub is closed, read, and
// nothing failed is waiting for another try.
func (p *Publisher) Run(ctx context.Context, sub *session.Subscription) {
	defer sub.Close()
	var (
		last    *session.Event // last event handed over (for checks)
		heard   []uint16       // the ports of the last event taken (Released)
		retry   *session.Event // failed event waiting for another try
		backoff = firstRetry
		timer   = time.NewTimer(time.Hour)
		closed  bool
	)
	timer.Stop()
	defer timer.Stop()
	every := time.Duration(0)
	if c, ok := p.c.(Checker); ok {
		every = c.CheckEvery()
	}
	arm := func(dt time.Duration) {
		timer.Stop()
		if dt > 0 {
			timer.Reset(dt)
		}
	}
	for {
		var ev session.Event
		select {
		case <-ctx.Done():
			return
		case <-sub.Wake():
			next, ok, done := sub.TryNext()
			if done {
				closed = true
			}
			if closed && retry == nil && !ok {
				return
			}
			if !ok || !published(next) {
				continue
			}
			ev = next
			ports := ev.Ports()
			if len(heard) > 0 && (ev.Kind == session.KindLost || !slices.Equal(heard, ports)) {
				ev.Released = heard
			} else {
				ev.Released = nil
			}
			heard = ports
			retry, backoff = nil, firstRetry
		case <-timer.C:
			switch {
			case retry != nil:
				ev = *retry
			case last != nil && len(last.Ports()) > 0:
				ev = session.Event{Kind: session.KindCheck, Lease: last.Lease}
			default:
				continue
			}
		}
		err := p.c.Publish(ctx, ev)
		if ctx.Err() != nil {
			return
		}
		p.record(ev, err)
		if err != nil {
			delay := backoff
			var ra *RetryAfter
			if errors.As(err, &ra) {
				delay = ra.Delay
			} else {
				backoff = min(backoff*2, maxRetry)
			}
			retry = &ev
			p.log.Warn("publishing port failed, will retry", "consumer", p.c.Name(), "ports", ev.Ports(), "in", delay.String(), "err", err)
			arm(delay)
			continue
		}
		retry, backoff = nil, firstRetry
		if ev.Kind != session.KindCheck {
			e := ev
			last = &e
		}
		if closed {
			return
		}
		arm(every)
	}
}

// published says whether a consumer hears ev: a new port or a reconnect
// with ports, or the port lost.
func published(ev session.Event) bool {
	switch ev.Kind {
	case session.KindPort, session.KindReconnect:
		return len(ev.Ports()) > 0
	case session.KindLost:
		return true
	}
	return false
}

func (p *Publisher) record(ev session.Event, err error) {
	p.mu.Lock()
	if ev.Kind == session.KindCheck && err == nil && p.res.OK {
		p.res.At = time.Now()
		res := p.res
		p.mu.Unlock()
		if p.onResult != nil {
			p.onResult(res)
		}
		return
	}
	p.res.Ports, p.res.At, p.res.OK = ev.Ports(), time.Now(), err == nil
	p.res.Count++
	p.res.Error = ""
	if err != nil {
		p.res.Failures++
		p.res.Error = err.Error()
	}
	res := p.res
	p.mu.Unlock()
	if err == nil && len(ev.Ports()) > 0 {
		p.log.Info("published", "consumer", p.c.Name(), "ports", ev.Ports(), "reason", string(ev.Kind))
	}
	if p.onResult != nil {
		p.onResult(res)
	}
}
