package portmap

import (
	"errors"
	"net/netip"
	"time"
)

// ViaUPnP is the Via of a mapping made through the UPnP Internet Gateway
// Device (package upnp).
const ViaUPnP = "upnp"

// MaxIGDLease is the longest lease an IGD mapping is granted (IGD:2's
// 604800 s); a longer one is shortened to it.
const MaxIGDLease = 7 * 24 * time.Hour

// Errors of MapIGD and UnmapIGD, each the UPnP error an IGD answers with.
var (
	// ErrNoPort: vpnfwd holds no port yet (501 Action Failed).
	ErrNoPort = errors.New("no port held yet")
	// ErrConflict: the external port asked for is not one vpnfwd holds,
	// or is another app's, or the internal port already goes out on
	// another (718 ConflictInMappingEntry).
	ErrConflict = errors.New("the external port is not one this app can have")
	// ErrNoneFree: every held port is another app's (728
	// NoPortMapsAvailable, AddAnyPortMapping).
	ErrNoneFree = errors.New("every held port is another app's")
	// ErrNotOwner: the mapping is another app's, or was made by NAT-PMP
	// or PCP (606 Action not authorized).
	ErrNotOwner = errors.New("the mapping is another app's")
	// ErrNoSuchEntry: no mapping has that external port and protocol
	// (714 NoSuchEntryInArray).
	ErrNoSuchEntry = errors.New("no such mapping")
)

// IGDOwner is who makes an IGD mapping: the requesting connection's
// address and, where the namespace's socket tables tell it, its user.
// Only the same owner renews, replaces or deletes the mapping.
type IGDOwner struct {
	Addr  netip.Addr
	UID   uint32
	UIDOK bool
}

// IGDRequest is an AddPortMapping or AddAnyPortMapping.
type IGDRequest struct {
	Proto    string // "tcp" or "udp"
	Internal uint16 // NewInternalPort
	External uint16 // NewExternalPort
	// Any: AddAnyPortMapping: any held port will do, External first.
	Any bool
	// Lease is NewLeaseDuration; 0 is "permanent". Either way the
	// mapping lasts only while a program listens on Internal (or for
	// MaxLifetime after it was made, so an app may map before it
	// listens), and at most Lease.
	Lease       time.Duration
	Owner       IGDOwner
	Description string // NewPortMappingDescription (at most 256 bytes kept)
}

// mayTouchIGD says whether o may renew, replace or delete m.
func (o IGDOwner) mayTouch(m *mapping) bool {
	return m.via == ViaUPnP && m.client == o.Addr.Unmap() && m.uidOK == o.UIDOK && m.uid == o.UID
}

// MapIGD creates or renews an IGD mapping: the held port External (or,
// with Any, whichever held port is free) sent to the app's Internal
// port. What the app is told is true: it gets a held port or an error,
// never a port the provider does not forward.
func (s *Server) MapIGD(r IGDRequest) (Mapping, error) {
	s.mu.Lock()
	m, err := s.mapIGDLocked(r)
	s.notifyLocked()
	return m, err
}

func (s *Server) mapIGDLocked(r IGDRequest) (Mapping, error) {
	if len(s.slots) == 0 {
		return Mapping{}, ErrNoPort
	}
	k := key{r.Proto, r.Internal}
	if old, had := s.maps[k]; had && !r.Owner.mayTouch(old) {
		return Mapping{}, ErrConflict // another app's, or another protocol's
	}
	i, ok := s.claims[r.Internal]
	switch {
	case ok && s.slots[i].carries(r.Proto):
		if !r.Any && s.slots[i].Public != r.External {
			return Mapping{}, ErrConflict // this port already goes out on another held port
		}
	case r.Any:
		if i = s.ownSlotLocked(r.Proto, r.Internal); i < 0 {
			i = s.freeSlotLocked(r.Proto, r.Internal, r.External)
		}
		if i < 0 {
			return Mapping{}, ErrNoneFree
		}
	default:
		if i = s.slotForLocked(r); i < 0 {
			return Mapping{}, ErrConflict
		}
	}
	now := s.cfg.Now()
	lease := min(r.Lease, MaxIGDLease)
	m := &mapping{client: r.Owner.Addr.Unmap(), uid: r.Owner.UID, uidOK: r.Owner.UIDOK, via: ViaUPnP,
		desc: truncate(r.Description, 256), expires: now.Add(s.cfg.MaxLifetime)}
	if lease > 0 {
		m.leaseEnd = now.Add(lease)
		m.expires = minTime(m.expires, m.leaseEnd)
	}
	if old, had := s.maps[k]; had {
		m.expires = maxTime(m.expires, m.leaseEndOr(old.expires))
	} else {
		s.log.Info("an app asked for a port: given one vpnfwd holds", "via", ViaUPnP, "protocol", r.Proto, "internal_port", r.Internal,
			"public_port", s.slots[i].Public, "client", m.client.String(), "lease", lease.String())
	}
	s.claims[r.Internal] = i
	s.maps[k] = m
	return s.entryLocked(k, m, i), nil
}

// slotForLocked is the slot whose public port is r.External, if r's app
// may have it: it is free, or the app listens on it itself, or it is
// the same owner's IGD mapping of another internal port (which moves, as
// miniupnpd updates a mapping its client makes again); -1 otherwise.
func (s *Server) slotForLocked(r IGDRequest) int {
	i := -1
	for j, sl := range s.slots {
		if sl.Public == r.External && sl.carries(r.Proto) {
			i = j
			break
		}
	}
	if i < 0 {
		return -1
	}
	if own := s.ownSlotLocked(r.Proto, r.Internal); own == i {
		return i
	}
	sl := s.slots[i]
	if (sl.Taken && sl.Target != r.Internal) || s.listenedLocked(sl, r.Internal) {
		return -1
	}
	var others []uint16
	for other, j := range s.claims {
		if j == i && other != r.Internal {
			others = append(others, other)
		}
	}
	for _, other := range others {
		for _, p := range []string{"tcp", "udp"} {
			if m, ok := s.maps[key{p, other}]; ok && !r.Owner.mayTouch(m) {
				return -1
			}
		}
	}
	for _, other := range others {
		s.dropLocked(other)
	}
	return i
}

// UnmapIGD deletes the mapping of external port and protocol, if owner
// made it through the IGD: ErrNoSuchEntry if there is none,
// ErrNotOwner if it is another app's or another protocol's.
func (s *Server) UnmapIGD(proto string, external uint16, owner IGDOwner) error {
	s.mu.Lock()
	err := ErrNoSuchEntry
	for k, m := range s.maps {
		i, ok := s.claims[k.internal]
		if k.proto != proto || !ok || i >= len(s.slots) || s.slots[i].Public != external {
			continue
		}
		if !owner.mayTouch(m) {
			err = ErrNotOwner
			break
		}
		delete(s.maps, k)
		s.log.Info("an app gave its port mapping up", "via", ViaUPnP, "protocol", k.proto, "internal_port", k.internal)
		err = nil
		break
	}
	s.releaseLocked()
	s.notifyLocked()
	return err
}

// PublicIP is the VPN's public address (invalid while unknown).
func (s *Server) PublicIP() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.public
}

// Held says whether vpnfwd holds a port apps may ask for.
func (s *Server) Held() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.slots) > 0
}

// entryLocked is the Mapping m, of key k on slot i.
func (s *Server) entryLocked(k key, m *mapping, i int) Mapping {
	sl := s.slots[i]
	return Mapping{Proto: k.proto, Internal: k.internal, Public: sl.Public, Local: sl.Local, Client: m.client, Via: m.via,
		Expires: m.expires, Description: m.desc, LeaseEnd: m.leaseEnd}
}

// keepListenedLocked extends the IGD mappings whose app listens on the
// internal port (by MaxLifetime, at most to their lease's end): an IGD
// mapping lives while its app does, as IGD clients renew seldom or never
// ("permanent" leases).
func (s *Server) keepListenedLocked(now time.Time) {
	for k, m := range s.maps {
		if m.via != ViaUPnP || !s.cfg.Sockets.Listening(k.internal) {
			continue
		}
		m.expires = maxTime(m.expires, m.leaseEndOr(now.Add(s.cfg.MaxLifetime)))
	}
}

// leaseEndOr is t, or the lease's end if that is earlier.
func (m *mapping) leaseEndOr(t time.Time) time.Time {
	if m.leaseEnd.IsZero() {
		return t
	}
	return minTime(t, m.leaseEnd)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
