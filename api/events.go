package api

import (
	"encoding/json"
	"sync"
)

// Event is a server-sent event: Type is "port", "state" or "publish".
type Event struct {
	Type string
	Data any
}

// Broker hands events to the /v1/events subscribers. A subscriber that
// falls 64 events behind is dropped (its stream ends) rather than slowing
// vpnfwd down.
type Broker struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// NewBroker makes an empty broker.
func NewBroker() *Broker { return &Broker{subs: map[chan Event]struct{}{}} }

// Publish sends ev to every subscriber.
func (b *Broker) Publish(typ string, data any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- Event{typ, data}:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *Broker) subscribe() chan Event {
	ch := make(chan Event, 64)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch
}

func (b *Broker) unsubscribe(ch chan Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
}

func (e Event) encode() []byte {
	data, _ := json.Marshal(e.Data)
	return []byte("event: " + e.Type + "\ndata: " + string(data) + "\n\n")
}

// JSON is the event's data as sent.
func (e Event) JSON() string {
	b, _ := json.Marshal(e.Data)
	return string(b)
}
