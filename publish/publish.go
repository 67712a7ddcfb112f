// Package publish tells consumers about the forwarded port: a file, a hook
// command, and (later) torrent clients. Every consumer hears every change
// once and in order, on its own goroutine, so a slow one holds up no other.
// Port 0 is never published.
package publish

import (
	"context"
	"errors"
	"github.com/vpnfwd/vpnfwd/status"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Event is a change of the forwarded ports. No Ports means the port was
// lost; consumers must not write or push a port then.
type Event struct {
	Ports []uint16
	// Reason is "port" for a new port, "lost", or "reconnect" when the
	// tunnel came back with the same port (consumers re-apply it).
	Reason string
	// Released are the ports given up: the old ones when the port
	// changed or was lost (a down hook hears them).
	Released []uint16
}

// Consumer is one place the port goes.
type Consumer interface {
	Name() string
	Publish(ctx context.Context, ev Event) error
}

// Dispatcher fans events out to consumers. Run it with Run; Send never
// blocks.
type Dispatcher struct {
	log       *slog.Logger
	consumers []*queue
	onResult  func(status.Consumer)
}

type queue struct {
	c      Consumer
	mu     sync.Mutex
	events []Event
	wake   chan struct{}
	res    status.Consumer
	busy   bool // an event is being handled
}

// NewDispatcher makes a dispatcher; onResult (may be nil) hears each
// outcome.
// A consumer's last outcome, for status and metrics, is a
// status.Consumer: the status shows what the dispatcher keeps.
func NewDispatcher(log *slog.Logger, onResult func(status.Consumer), cs ...Consumer) *Dispatcher {
	d := &Dispatcher{log: log, onResult: onResult}
	for _, c := range cs {
		d.consumers = append(d.consumers, &queue{c: c, wake: make(chan struct{}, 1), res: status.Consumer{Consumer: c.Name()}})
	}
	return d
}

// Send queues ev for every consumer. Ports equal to 0 are dropped.
func (d *Dispatcher) Send(ev Event) {
	ev.Ports = slices.DeleteFunc(slices.Clone(ev.Ports), func(p uint16) bool { return p == 0 })
	if len(ev.Ports) == 0 && ev.Reason != "lost" {
		return
	}
	for _, q := range d.consumers {
		q.mu.Lock()
		q.events = append(q.events, ev)
		q.mu.Unlock()
		q.poke()
	}
}

// Results returns every consumer's last outcome.
func (d *Dispatcher) Results() []status.Consumer {
	out := make([]status.Consumer, 0, len(d.consumers))
	for _, q := range d.consumers {
		q.mu.Lock()
		out = append(out, q.res)
		q.mu.Unlock()
	}
	return out
}

// Checker is a consumer that also wants the current port re-checked
// periodically (a torrent client that may have restarted with a stale
// setting). It gets an Event with Reason "check".
type Checker interface {
	Consumer
	CheckEvery() time.Duration
}

// RetryAfter is an error that tells the dispatcher how long to wait before
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

// Run delivers events until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range d.consumers {
		wg.Add(1)
		go func() { defer wg.Done(); d.serve(ctx, q) }()
	}
	wg.Wait()
}

// serve delivers q's events in order. A failed event is retried with
// backoff until it succeeds or a newer event replaces it; a Checker gets
// the last good port again every CheckEvery.
func (d *Dispatcher) serve(ctx context.Context, q *queue) {
	var (
		last    *Event // last event handed over (for checks)
		retry   *Event // failed event waiting for another try
		backoff = firstRetry
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	every := time.Duration(0)
	if c, ok := q.c.(Checker); ok {
		every = c.CheckEvery()
	}
	arm := func(dt time.Duration) {
		timer.Stop()
		if dt > 0 {
			timer.Reset(dt)
		}
	}
	for {
		var ev Event
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-q.wake:
			q.mu.Lock()
			if len(q.events) == 0 {
				q.mu.Unlock()
				continue
			}
			ev = q.events[0]
			q.events = q.events[1:]
			q.busy = true
			if len(q.events) > 0 {
				q.poke()
			}
			q.mu.Unlock()
			retry, backoff = nil, firstRetry
		case <-timer.C:
			switch {
			case retry != nil:
				ev = *retry
			case last != nil && len(last.Ports) > 0:
				ev = Event{Ports: last.Ports, Reason: "check"}
			default:
				continue
			}
			q.mu.Lock()
			q.busy = true
			q.mu.Unlock()
		}
		err := q.c.Publish(ctx, ev)
		if ctx.Err() != nil {
			return
		}
		d.record(q, ev, err)
		if err != nil {
			delay := backoff
			var ra *RetryAfter
			if errors.As(err, &ra) {
				delay = ra.Delay
			} else {
				backoff = min(backoff*2, maxRetry)
			}
			retry = &ev
			d.log.Warn("publishing port failed, will retry", "consumer", q.c.Name(), "ports", ev.Ports, "in", delay.String(), "err", err)
			arm(delay)
			continue
		}
		retry, backoff = nil, firstRetry
		if ev.Reason != "check" {
			e := ev
			last = &e
		}
		arm(every)
	}
}

// poke wakes the consumer's goroutine (q.mu held or not).
func (q *queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) record(q *queue, ev Event, err error) {
	q.mu.Lock()
	q.busy = false
	if ev.Reason == "check" && err == nil && q.res.OK {
		q.res.At = time.Now()
		res := q.res
		q.mu.Unlock()
		if d.onResult != nil {
			d.onResult(res)
		}
		return
	}
	q.res.Ports, q.res.At, q.res.OK = ev.Ports, time.Now(), err == nil
	q.res.Count++
	q.res.Error = ""
	if err != nil {
		q.res.Failures++
		q.res.Error = err.Error()
	}
	res := q.res
	q.mu.Unlock()
	if err == nil && len(ev.Ports) > 0 {
		d.log.Info("published", "consumer", q.c.Name(), "ports", ev.Ports, "reason", ev.Reason)
	}
	if d.onResult != nil {
		d.onResult(res)
	}
}

// Flush waits until every queued event has been handled, or timeout.
func (d *Dispatcher) Flush(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		busy := false
		for _, q := range d.consumers {
			q.mu.Lock()
			busy = busy || len(q.events) > 0 || q.busy
			q.mu.Unlock()
		}
		if !busy {
			return
		}
		<-time.After(10 * time.Millisecond) // bounded poll at shutdown
	}
}
