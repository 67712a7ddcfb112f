// Package portmap is the gateway that apps in vpnfwd's network namespace
// (tun mode) or in CMD's (exec) ask for a port: it answers NAT-PMP (RFC
// 6886) and PCP (RFC 6887) MAP requests, and the UPnP IGD's (package
// upnp) in the same table, with a port vpnfwd holds from the VPN
// provider and its public address, and says which of the app's ports
// each held port must go to. It never gives a port that is not forwarded:
// when every held port is taken, the app gets NAT-PMP's "out of
// resources" or PCP's NO_RESOURCES.
//
// One namespace is one host here: a mapping is keyed by the internal
// port, and TCP and UDP of the same internal port share one held port
// (torrent clients map both). Every other program in the namespace is a
// stranger (a pod's other containers), so who may have a held port, and
// who may change a mapping, follows one rule (docs/security.md):
//
//   - A program listening on the held port itself keeps it: a mapping
//     that would send that port's traffic to another internal port is
//     refused. Otherwise a held port goes to the first app that asks
//     while it is free, and stays its app's while that mapping lives and
//     the app listens on its port: neither asking for the held port nor
//     listening on it takes a working mapping.
//   - A mapping made by PCP is changed or removed only with its nonce; a
//     mapping made by NAT-PMP is removed only by the user that made it,
//     from the socket that made it or, once that socket is closed, from
//     another of its sockets (natpmpc asks from a new socket each run);
//     any NAT-PMP request for the same internal port renews it without
//     making it the requester's or shortening it. Neither protocol
//     touches the other's mappings.
//   - A mapping made through the UPnP IGD (package upnp, MapIGD) is
//     renewed, replaced or removed only by the address and user that
//     made it, never by NAT-PMP or PCP, nor theirs through the IGD. It
//     gets exactly a held port (another external port is a conflict)
//     and lives while its app listens on the internal port, at most to
//     its lease's end.
//   - Requests are rate-limited per requesting socket, not per address
//     (every app in the namespace may share one), in a table that makes
//     room by forgetting the idlest socket, so a flood from many sources
//     cannot keep an app from being answered.
package portmap

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Slot is one port vpnfwd holds that an app may have.
type Slot struct {
	Public uint16 // the port the internet connects to
	Local  uint16 // the port it arrives on through the tunnel
	Proto  string // "tcp", "udp", or "" for both
	// Taken: vpnfwd's own configuration sends it to Target (--forward
	// HOST:PORT); an app asking for Target itself gets it, others not.
	Taken  bool
	Target uint16
}

func (s Slot) carries(proto string) bool { return s.Proto == "" || s.Proto == proto }

// Mapping is one app's port given a held port.
type Mapping struct {
	Proto    string     `json:"protocol"` // "tcp" or "udp"
	Internal uint16     `json:"internal_port"`
	Public   uint16     `json:"public_port"`
	Local    uint16     `json:"-"` // where it arrives through the tunnel
	Client   netip.Addr `json:"client"`
	Via      string     `json:"via"` // "nat-pmp", "pcp" or "upnp"
	Expires  time.Time  `json:"expires"`
	// Description is an IGD mapping's NewPortMappingDescription (the
	// app's words: not for the status) and LeaseEnd its lease's end
	// (zero: "permanent").
	Description string    `json:"-"`
	LeaseEnd    time.Time `json:"-"`
}

// Config tunes a Server.
type Config struct {
	// MaxLifetime caps the lifetime granted (default 2 min): apps renew
	// at about half of it, so they hear of a new held port that soon.
	MaxLifetime time.Duration
	// Changed hears the mappings in force whenever they change, one
	// change at a time and in the order they were made (on the goroutine
	// that changed them; it must not block for long, nor call the
	// Server).
	Changed func([]Mapping)
	// RequestsPerSecond bounds each requesting socket's requests
	// (default 20, with twice as many at once); more are dropped
	// unanswered.
	RequestsPerSecond int
	// Sockets are the namespace's (CachedSockets); nil: a namespace with
	// none but the apps' requests.
	Sockets Sockets
	Log     *slog.Logger
	Now     func() time.Time // tests
}

// key is one mapping: protocol and internal port.
type key struct {
	proto    string
	internal uint16
}

type mapping struct {
	client  netip.Addr
	owner   netip.AddrPort // the socket that made it (NAT-PMP: it may delete it)
	uid     uint32         // that socket's owner (NAT-PMP: it may delete it once the socket is closed)
	uidOK   bool
	via     string
	nonce   [12]byte
	expires time.Time
	// IGD's: the app's description and the lease's end (zero:
	// permanent); client, uid and uidOK are its owner.
	desc     string
	leaseEnd time.Time
}

// Server holds the held ports, the mappings and the epoch. Handle
// answers one request; Serve runs it on a socket.
type Server struct {
	cfg Config
	log *slog.Logger

	// notify orders the calls of Changed: taken under mu, held until
	// Changed returns.
	notify sync.Mutex
	mu     sync.Mutex
	public netip.Addr
	slots  []Slot
	epoch  time.Time
	maps   map[key]*mapping
	claims map[uint16]int // internal port -> index in slots
	last   []Mapping      // what Changed last heard
	rates  map[netip.AddrPort]*bucket
	warned time.Time // when "every port is taken" was last logged
}

// New makes a server with no held port yet (requests get "network
// failure" until SetPorts gives one).
func New(cfg Config) *Server {
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = 2 * time.Minute
	}
	if cfg.RequestsPerSecond <= 0 {
		cfg.RequestsPerSecond = 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Sockets == nil {
		cfg.Sockets = noSockets{}
	}
	return &Server{cfg: cfg, log: cfg.Log, epoch: cfg.Now(), maps: map[key]*mapping{}, claims: map[uint16]int{}, rates: map[netip.AddrPort]*bucket{}}
}

// SetPorts gives the held ports and the public address (invalid when
// unknown). An app's mapping stays with its slot: when the provider moves
// that slot to another port, the app's traffic follows at once and the
// epoch starts again, so that apps map again and hear the new port (RFC
// 6886 section 3.6, RFC 6887 section 8.5).
func (s *Server) SetPorts(public netip.Addr, slots []Slot) {
	s.mu.Lock()
	changed := public != s.public || !slices.Equal(slots, s.slots)
	if !changed {
		s.mu.Unlock()
		return
	}
	s.public, s.slots = public.Unmap(), slices.Clone(slots)
	s.epoch = s.cfg.Now()
	// With no port held (lost, coming back) the mappings wait, not in
	// force; they are in force again on the slot's next port.
	for in, i := range s.claims {
		if len(slots) > 0 && (i >= len(slots) || (slots[i].Taken && slots[i].Target != in)) {
			delete(s.claims, in)
		}
	}
	for k := range s.maps {
		if _, ok := s.claims[k.internal]; !ok {
			delete(s.maps, k)
		}
	}
	s.notifyLocked()
}

// Claimed says whether an app's mapping holds slot i.
func (s *Server) Claimed(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.claims {
		if j == i {
			return true
		}
	}
	return false
}

// Mappings are the mappings in force.
func (s *Server) Mappings() []Mapping {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.currentLocked()
}

func (s *Server) currentLocked() []Mapping {
	var out []Mapping
	for k, m := range s.maps {
		i, ok := s.claims[k.internal]
		if !ok || i >= len(s.slots) {
			continue
		}
		sl := s.slots[i]
		out = append(out, Mapping{Proto: k.proto, Internal: k.internal, Public: sl.Public, Local: sl.Local, Client: m.client, Via: m.via, Expires: m.expires,
			Description: m.desc, LeaseEnd: m.leaseEnd})
	}
	slices.SortFunc(out, func(a, b Mapping) int {
		if a.Internal != b.Internal {
			return int(a.Internal) - int(b.Internal)
		}
		return cmpString(a.Proto, b.Proto)
	})
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// notifyLocked tells Changed (if the mappings in force changed) and
// unlocks.
func (s *Server) notifyLocked() {
	cur := s.currentLocked()
	same := len(cur) == len(s.last)
	for i := 0; same && i < len(cur); i++ {
		a, b := cur[i], s.last[i]
		same = a.Proto == b.Proto && a.Internal == b.Internal && a.Public == b.Public && a.Local == b.Local
	}
	s.last = cur
	if same || s.cfg.Changed == nil {
		s.mu.Unlock()
		return
	}
	// The next change waits for this one to be heard, so Changed never
	// hears an older table after a newer one.
	s.notify.Lock()
	defer s.notify.Unlock()
	s.mu.Unlock()
	s.cfg.Changed(cur)
}

// Expire drops the mappings whose lifetime ran out (Serve calls it every
// second).
func (s *Server) Expire() {
	s.mu.Lock()
	now := s.cfg.Now()
	s.keepListenedLocked(now)
	for k, m := range s.maps {
		if !now.Before(m.expires) {
			delete(s.maps, k)
			s.log.Info("an app's port mapping expired", "protocol", k.proto, "internal_port", k.internal, "client", m.client.String())
		}
	}
	s.releaseLocked()
	for a, b := range s.rates {
		if now.Sub(b.at) > time.Minute {
			delete(s.rates, a)
		}
	}
	s.notifyLocked()
}

// releaseLocked frees the slots no mapping uses any more.
func (s *Server) releaseLocked() {
	for in := range s.claims {
		if _, t := s.maps[key{"tcp", in}]; t {
			continue
		}
		if _, u := s.maps[key{"udp", in}]; u {
			continue
		}
		delete(s.claims, in)
	}
}

// epochSeconds is the epoch's age, as both protocols report it.
func (s *Server) epochSeconds() uint32 {
	return uint32(s.cfg.Now().Sub(s.epoch) / time.Second)
}

// grant is the outcome of asking for a mapping.
type grant int

const (
	granted     grant = iota
	noPort            // nothing held yet: network failure
	allTaken          // every held port is some other app's: out of resources
	notOwner          // the mapping is another app's (PCP: another nonce; NAT-PMP: made by PCP, or another socket's delete)
	notThatPort       // PCP PREFER_FAILURE: the suggested port cannot be had
)

// request is one app's MAP request, as either protocol carries it.
type request struct {
	proto               string
	internal, suggested uint16
	lifetime            time.Duration
	from                netip.AddrPort
	via                 string    // "nat-pmp" or "pcp"
	nonce               *[12]byte // PCP's
	strict              bool      // PCP PREFER_FAILURE
}

// mayTouch says whether r may renew or change the mapping m: PCP's with
// its nonce only; NAT-PMP's by a NAT-PMP request (any socket may renew
// it: libnatpmp clients ask from a new socket each run). Neither
// protocol touches the other's.
func (r request) mayTouch(m *mapping) bool {
	if m.via != r.via {
		return false
	}
	return r.via != "pcp" || m.nonce == *r.nonce
}

// mapLocked creates or renews the mapping (proto, internal) for the app,
// preferring the held port suggested; it returns the slot given and the
// lifetime granted.
func (s *Server) mapLocked(r request) (Slot, time.Duration, grant) {
	if len(s.slots) == 0 {
		return Slot{}, 0, noPort
	}
	k := key{r.proto, r.internal}
	old, had := s.maps[k]
	if had && !r.mayTouch(old) {
		return Slot{}, 0, notOwner
	}
	i, ok := s.claims[r.internal]
	if !ok || !s.slots[i].carries(r.proto) {
		i = s.ownSlotLocked(r.proto, r.internal)
		if i < 0 {
			i = s.freeSlotLocked(r.proto, r.internal, r.suggested)
		}
		if i < 0 && r.strict && r.suggested != 0 {
			return Slot{}, 0, notThatPort // the port it insists on is not free (RFC 6887 section 13.2)
		}
		if i < 0 {
			return Slot{}, 0, allTaken
		}
	}
	if r.strict && r.suggested != 0 && s.slots[i].Public != r.suggested {
		return Slot{}, 0, notThatPort
	}
	lifetime := min(r.lifetime, s.cfg.MaxLifetime)
	expires := s.cfg.Now().Add(lifetime)
	if had && r.via != "pcp" && r.from != old.owner && old.expires.After(expires) {
		// Another socket may renew a NAT-PMP mapping (natpmpc asks from
		// a new one each run) but never shorten it: a lifetime of 1 s
		// from a stranger would end the app's mapping and free its port.
		expires = old.expires
		lifetime = expires.Sub(s.cfg.Now())
	}
	s.claims[r.internal] = i
	m := &mapping{client: r.from.Addr().Unmap(), owner: r.from, via: r.via, expires: expires}
	if r.nonce != nil {
		m.nonce = *r.nonce
	}
	if had {
		m.owner, m.uid, m.uidOK = old.owner, old.uid, old.uidOK // a renewal from another socket does not make it that socket's
	} else {
		m.uid, m.uidOK = s.cfg.Sockets.UDPOwner(r.from)
		s.log.Info("an app asked for a port: given one vpnfwd holds", "via", r.via, "protocol", r.proto, "internal_port", r.internal,
			"public_port", s.slots[i].Public, "client", r.from.String(), "lifetime", lifetime.String())
	}
	s.maps[k] = m
	return s.slots[i], lifetime, granted
}

// ownSlotLocked is the slot whose port is internal itself (an app that
// listens on the forwarded port, as a torrent client does once vpnfwd
// set its listening port), -1 if none. It is that app's, and the
// mappings of the app that had it end here, only when nothing listens on
// the other app's port any more (it moved, or left): a working mapping
// is never taken, by asking or by listening on the held port.
func (s *Server) ownSlotLocked(proto string, internal uint16) int {
	for i, sl := range s.slots {
		if (sl.Public != internal && sl.Local != internal) || !sl.carries(proto) || (sl.Taken && sl.Target != internal) {
			continue
		}
		var others []uint16
		for other, j := range s.claims {
			if j == i && other != internal {
				others = append(others, other)
			}
		}
		held := false
		for _, other := range others {
			held = held || s.cfg.Sockets.Listening(other)
		}
		if held {
			continue // another app's working mapping
		}
		for _, other := range others {
			s.dropLocked(other)
			s.log.Info("an app listening on the forwarded port itself takes it from the app that had it", "port", sl.Public, "from_internal_port", other)
		}
		return i
	}
	return -1
}

// dropLocked ends the mappings and the claim of internal.
func (s *Server) dropLocked(internal uint16) {
	delete(s.claims, internal)
	delete(s.maps, key{"tcp", internal})
	delete(s.maps, key{"udp", internal})
}

// freeSlotLocked is a slot carrying proto that no other internal port
// claims and no program listens on itself: the one vpnfwd's
// configuration already sends to internal, else the suggested public
// port if it is one, else the first; -1 if none.
func (s *Server) freeSlotLocked(proto string, internal, suggested uint16) int {
	taken := map[int]bool{}
	for _, j := range s.claims {
		taken[j] = true
	}
	for i, sl := range s.slots {
		if sl.Taken && sl.Target == internal && !taken[i] && sl.carries(proto) {
			return i
		}
	}
	first := -1
	for i, sl := range s.slots {
		if taken[i] || sl.Taken || !sl.carries(proto) || s.listenedLocked(sl, internal) {
			continue
		}
		if sl.Public == suggested {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

// listenedLocked says whether a program other than the one on internal
// listens on the slot's own port (where its traffic arrives with no
// mapping): the slot is that program's.
func (s *Server) listenedLocked(sl Slot, internal uint16) bool {
	return sl.Local != internal && sl.Public != internal && s.cfg.Sockets.Listening(sl.Local)
}

// unmapLocked deletes (proto, internal) (internal 0: every mapping of
// proto; proto "": of both) for the app r, as a lifetime-0 request asks:
// only the mappings it may remove (PCP: its nonce; NAT-PMP: made by the
// same socket, or by a closed socket of the same user). Asked to remove
// one mapping it may not, it removes nothing and says notOwner.
func (s *Server) unmapLocked(r request) grant {
	for k, m := range s.maps {
		if (r.proto != "" && k.proto != r.proto) || (r.internal != 0 && k.internal != r.internal) {
			continue
		}
		if !s.mayRemoveLocked(r, m) {
			if r.internal != 0 {
				return notOwner
			}
			continue
		}
		delete(s.maps, k)
		s.log.Info("an app gave its port mapping up", "protocol", k.proto, "internal_port", k.internal)
	}
	s.releaseLocked()
	return granted
}

// mayRemoveLocked says whether r may remove m.
func (s *Server) mayRemoveLocked(r request, m *mapping) bool {
	switch {
	case m.via != r.via:
		return false
	case r.via == "pcp":
		return m.nonce == *r.nonce
	case !m.uidOK:
		// The maker's user is unknown: only its socket, while it is
		// still the same one (a closed port bound again may be anyone's).
		_, open := s.cfg.Sockets.UDPOwner(m.owner)
		return m.owner == r.from && open
	}
	uid, ok := s.cfg.Sockets.UDPOwner(r.from)
	if !ok || uid != m.uid {
		return false // another user, whatever socket it asks from
	}
	if m.owner == r.from {
		return true
	}
	_, open := s.cfg.Sockets.UDPOwner(m.owner)
	return !open // the app that made it is gone: its user may clean up
}

// warnTakenLocked logs that an app found every held port taken, at most
// every 10 s (a flood of requests is not a flood of log lines).
func (s *Server) warnTakenLocked(msg string, r request) {
	now := s.cfg.Now()
	if now.Sub(s.warned) < 10*time.Second {
		return
	}
	s.warned = now
	s.log.Warn(msg, "protocol", r.proto, "internal_port", r.internal, "client", r.from.String())
}

// maxSockets bounds the rate table; past it the idlest socket's entry
// makes room.
const maxSockets = 1024

// bucket is one socket's request allowance.
type bucket struct {
	tokens float64
	at     time.Time
}

// allowLocked takes one request from the requesting socket's allowance.
// Apps in the namespace may all arrive from one address, so the
// allowance is the socket's; a table full of strangers' sockets makes
// room for a new one by forgetting the idlest, so it never refuses a
// socket it has not heard from.
func (s *Server) allowLocked(from netip.AddrPort) bool {
	now := s.cfg.Now()
	b := s.rates[from]
	burst := float64(2 * s.cfg.RequestsPerSecond)
	if b == nil {
		if len(s.rates) >= maxSockets {
			var idlest netip.AddrPort
			var at time.Time
			for a, b := range s.rates {
				if at.IsZero() || b.at.Before(at) {
					idlest, at = a, b.at
				}
			}
			delete(s.rates, idlest)
		}
		b = &bucket{tokens: burst, at: now}
		s.rates[from] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*float64(s.cfg.RequestsPerSecond))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
