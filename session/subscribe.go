package session

import (
	"sync"
)

// Consumers subscribe: each Sink runs on a goroutine of its own, fed from
// a bounded queue, so the session's loop never waits on a consumer and no
// consumer's I/O (netlink, an HTTP call, an fsync) runs on the loop.
//
// The rule, for every subscriber alike: events stay in order; when a
// subscriber has fallen queueSize events behind, the oldest queued event
// is dropped. Every event carries the whole lease and port health, so a
// later event supersedes an earlier one: a slow consumer may miss steps,
// never hears an older port after a newer one, and always hears the last.
const queueSize = 64

// subscriber is one Sink's queue and goroutine.
type subscriber struct {
	sink   Sink
	mu     sync.Mutex
	queue  []Event
	wake   chan struct{} // one token: the queue has events
	closed bool
	done   chan struct{}
}

func newSubscriber(s Sink) *subscriber {
	sub := &subscriber{sink: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go sub.run()
	return sub
}

// send queues ev; it never blocks.
func (s *subscriber) send(ev Event) {
	s.mu.Lock()
	if len(s.queue) == queueSize {
		s.queue = append(s.queue[:0], s.queue[1:]...)
	}
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// close lets the subscriber hear what is queued, then end; it waits.
func (s *subscriber) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.done
}

func (s *subscriber) run() {
	defer close(s.done)
	for range s.wake {
		for {
			s.mu.Lock()
			if len(s.queue) == 0 {
				closed := s.closed
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			ev := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			s.sink(ev)
		}
	}
}
