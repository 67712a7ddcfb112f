package publish

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/status"
)

// portEv is the session's event of kind for ports (none: no lease held).
func portEv(kind string, ports ...uint16) session.Event {
	l := provider.Lease{Provider: "test"}
	for _, p := range ports {
		l.Ports = append(l.Ports, provider.Port{Public: p, Local: p})
	}
	return session.Event{Kind: session.Kind(kind), Lease: l}
}

// released is ev with the ports it gives up.
func released(ev session.Event, ports ...uint16) session.Event {
	ev.Released = ports
	return ev
}

// harness runs consumers as the daemon does: each a Publisher around its
// own subscription to a hub the test emits into.
type harness struct {
	hub    *session.Hub
	pubs   []*Publisher
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newHarness(onResult func(status.Consumer), cs ...Consumer) *harness {
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{hub: session.NewHub(nil), cancel: cancel}
	for _, c := range cs {
		p := NewPublisher(c, slog.New(slog.DiscardHandler), onResult)
		h.pubs = append(h.pubs, p)
		sub := h.hub.Subscribe()
		h.wg.Add(1)
		go func() { defer h.wg.Done(); p.Run(ctx, sub) }()
	}
	return h
}

// Send emits ev as the session would.
func (h *harness) Send(ev session.Event) { h.hub.Note(ev) }

// Results are the consumers' last outcomes.
func (h *harness) Results() []status.Consumer {
	var out []status.Consumer
	for _, p := range h.pubs {
		out = append(out, p.Result())
	}
	return out
}

// Flush ends the run as the session does (the hub closes; each publisher
// delivers what it has) and waits for the publishers, timeout at most.
func (h *harness) Flush(timeout time.Duration) {
	h.hub.Close()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// Stop ends the publishers.
func (h *harness) Stop() { h.cancel(); h.wg.Wait() }
