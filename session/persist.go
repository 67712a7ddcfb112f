package session

import (
	"log/slog"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// savedLease is what the state store keeps of the last port.
type savedLease struct {
	Provider string    `json:"provider"`
	Ports    []uint16  `json:"ports"`
	At       time.Time `json:"at"`
}

// persist is the session's own subscriber: it saves each new port, so the
// next run asks the provider for the same one (SavedPorts).
func persist(store provider.Store, log *slog.Logger) Sink {
	return func(ev Event) {
		if ev.Kind != KindPort {
			return
		}
		l := savedLease{Provider: ev.Lease.Provider, Ports: ev.Lease.PublicPorts(), At: ev.At}
		if err := store.Save("lease", l); err != nil {
			log.Warn("saving the port in the state directory", "err", err)
		}
	}
}

// SavedPorts is the port a session with the same provider held last, from
// the store (nil if none).
func SavedPorts(store provider.Store, prov string) []uint16 {
	var l savedLease
	if store.Load("lease", &l) != nil || l.Provider != prov {
		return nil
	}
	return l.Ports
}
