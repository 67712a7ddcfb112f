package api

import (
	"encoding/json"

	"github.com/vpnfwd/vpnfwd/session"
)

// Events is where the event stream comes from: the session (or, in
// tests, a session.Hub). Each /v1/events client has a subscription of
// its own: bounded and ordered; a client that falls behind misses the
// oldest events a later one supersedes, never the last (see session's
// hub.go).
type Events interface {
	Subscribe() *session.Subscription
}

// sseEvent is one server-sent event.
type sseEvent struct {
	Type string
	Data any
}

// render is a session event as the stream sends it (ok false: the stream
// does not send this kind): "state", "port" (a new port, or lost),
// "health", "error", "recovery", "publish" (a consumer's outcome) and
// "app_mappings".
func render(ev session.Event) (sseEvent, bool) {
	switch ev.Kind {
	case session.KindState:
		return sseEvent{"state", map[string]string{"state": string(ev.State), "detail": ev.Detail}}, true
	case session.KindPort, session.KindLost:
		return sseEvent{"port", session.PortStatus(ev.Lease, ev.Health)}, true
	case session.KindHealth:
		return sseEvent{"health", session.PortStatus(ev.Lease, ev.Health)}, true
	case session.KindError, session.KindRecovery:
		return sseEvent{string(ev.Kind), map[string]any{"detail": ev.Detail, "state": ev.State, "at": ev.At}}, true
	case session.KindPublish:
		if ev.Consumer != nil {
			return sseEvent{"publish", *ev.Consumer}, true
		}
	case session.KindApps:
		return sseEvent{"app_mappings", ev.Apps}, true
	}
	return sseEvent{}, false
}

func (e sseEvent) encode() []byte {
	data, _ := json.Marshal(e.Data)
	return []byte("event: " + e.Type + "\ndata: " + string(data) + "\n\n")
}
