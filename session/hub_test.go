package session

import (
	"context"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// A consumer that falls behind while other events flood in (publish
// outcomes, health) still hears the port change and the reconnect queued
// before them: only an event a later one supersedes gives way. Before,
// the oldest event gave way whatever it was, so the data plane never
// applied the new port and a publisher never published it.
func TestFullQueueKeepsThePort(t *testing.T) {
	hold, held := make(chan struct{}), make(chan struct{})
	var applied []Event
	h := NewHub(func(ev Event) {
		if ev.Kind == KindState {
			close(held)
			<-hold // the data plane is slow: everything below queues
		}
		applied = append(applied, ev)
	})
	sub := h.Subscribe()
	h.Note(Event{Kind: KindState})
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		close(hold)
		t.Fatal("the apply stage never ran")
	}
	h.Note(Event{Kind: KindPort, Lease: lease(1000)})
	h.Note(Event{Kind: KindPort, Lease: lease(2000)})
	h.Note(Event{Kind: KindReconnect, Lease: lease(2000)})
	for range 3 * queueSize {
		h.Note(Event{Kind: KindPublish})
	}
	close(hold)
	h.Close()
	var heard []Event
	for {
		ev, ok := sub.Next(context.Background())
		if !ok {
			break
		}
		heard = append(heard, ev)
	}
	for _, c := range []struct {
		who string
		evs []Event
	}{{"the apply stage", applied}, {"the subscriber", heard}} {
		var port, reconnect bool
		for _, ev := range c.evs {
			switch ev.Kind {
			case KindPort:
				port = ev.Lease.Ports[0].Public == 2000
			case KindReconnect:
				reconnect = true
			}
		}
		if !port || !reconnect {
			t.Errorf("%s heard port 2000: %v, the reconnect: %v (%d events)", c.who, port, reconnect, len(c.evs))
		}
		if len(c.evs) > queueSize+1 {
			t.Errorf("%s heard %d events: the queue is not bounded", c.who, len(c.evs))
		}
	}
	if now, _ := h.Applied(); now == nil || now.Ports[0].Public != 2000 {
		t.Errorf("applied %v, want port 2000", now)
	}
}

// A subscription opened on a closed hub (an event stream that connects
// as the daemon stops) is closed at once, and Wake says so: a reader
// waiting on Wake ends rather than waiting for a token that never comes.
func TestSubscribeAfterClose(t *testing.T) {
	h := NewHub(nil)
	h.Close()
	sub := h.Subscribe()
	select {
	case <-sub.Wake():
	case <-time.After(5 * time.Second):
		t.Fatal("no token on Wake: a reader waits forever")
	}
	if _, ok, done := sub.TryNext(); ok || !done {
		t.Errorf("TryNext: ok %v done %v, want the end", ok, done)
	}
}

// Served.Wait sees a lease the plane served even when the next one
// followed at once, waits while none is served, and ends with the hub.
func TestServedWait(t *testing.T) {
	release := make(chan struct{})
	h := NewHub(func(ev Event) {
		if ev.Kind == KindPort {
			<-release
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	is := func(port uint16) func(provider.Lease) bool {
		return func(l provider.Lease) bool { return l.SamePorts(lease(port)) }
	}
	got := make(chan bool, 2)
	from := h.Served()
	go func() { got <- from.Wait(ctx, is(1000)) }()
	go func() { got <- from.Wait(ctx, is(3000)) }()
	h.Note(Event{Kind: KindPort, Lease: lease(1000)})
	h.Note(Event{Kind: KindPort, Lease: lease(2000)})
	close(release)
	if !<-got {
		t.Error("port 1000, applied and then replaced at once, was not seen")
	}
	h.Close()
	if <-got {
		t.Error("port 3000, never applied, was taken for served")
	}
	if !h.Served().Wait(ctx, is(2000)) {
		t.Error("the lease served when the hub stopped was not seen")
	}
}
