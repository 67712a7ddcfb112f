// Package portmap is the gateway that apps in vpnfwd's network namespace
// (tun mode) or in CMD's (exec) ask for a port: it answers NAT-PMP (RFC
// 6886) and PCP (RFC 6887) MAP requests with a port vpnfwd holds from the
// VPN provider and its public address, and says which of the app's ports
// each held port must go to. It never gives a port that is not forwarded:
// when every held port is taken, the app gets NAT-PMP's "out of
// resources" or PCP's NO_RESOURCES.
//
// One namespace is one host here: a mapping belongs to the internal port,
// whichever of the namespace's addresses asked, and TCP and UDP of the
// same internal port share one held port (torrent clients map both).
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
	Via      string     `json:"via"` // "nat-pmp" or "pcp"
	Expires  time.Time  `json:"expires"`
}

// Config tunes a Server.
type Config struct {
	// MaxLifetime caps the lifetime granted (default 2 min): apps renew
	// at about half of it, so they hear of a new held port that soon.
	MaxLifetime time.Duration
	// Changed hears the mappings in force whenever they change (on the
	// goroutine that changed them; it must not block for long).
	Changed func([]Mapping)
	// RequestsPerSecond bounds each client address's requests (default
	// 20, with twice as many at once); more are dropped unanswered.
	RequestsPerSecond int
	Log               *slog.Logger
	Now               func() time.Time // tests
}

// key is one mapping: protocol and internal port.
type key struct {
	proto    string
	internal uint16
}

type mapping struct {
	client  netip.Addr
	via     string
	nonce   [12]byte
	expires time.Time
}

// Server holds the held ports, the mappings and the epoch. Handle
// answers one request; Serve runs it on a socket.
type Server struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	public netip.Addr
	slots  []Slot
	epoch  time.Time
	maps   map[key]*mapping
	claims map[uint16]int // internal port -> index in slots
	last   []Mapping      // what Changed last heard
	rates  map[netip.Addr]*bucket
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
	return &Server{cfg: cfg, log: cfg.Log, epoch: cfg.Now(), maps: map[key]*mapping{}, claims: map[uint16]int{}, rates: map[netip.Addr]*bucket{}}
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
		out = append(out, Mapping{Proto: k.proto, Internal: k.internal, Public: sl.Public, Local: sl.Local, Client: m.client, Via: m.via, Expires: m.expires})
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
	s.mu.Unlock()
	if !same && s.cfg.Changed != nil {
		s.cfg.Changed(cur)
	}
}

// Expire drops the mappings whose lifetime ran out (Serve calls it every
// second).
func (s *Server) Expire() {
	s.mu.Lock()
	now := s.cfg.Now()
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
	wrongNonce        // PCP: the mapping is someone else's
	notThatPort       // PCP PREFER_FAILURE: the suggested port cannot be had
)

// mapLocked creates or renews the mapping (proto, internal) for client,
// preferring the held port suggested; it returns the slot given and the
// lifetime granted.
func (s *Server) mapLocked(proto string, internal, suggested uint16, lifetime time.Duration, client netip.Addr, via string, nonce *[12]byte, strict bool) (Slot, time.Duration, grant) {
	if len(s.slots) == 0 {
		return Slot{}, 0, noPort
	}
	k := key{proto, internal}
	if m, ok := s.maps[k]; ok && nonce != nil && m.via == "pcp" && m.nonce != *nonce {
		return Slot{}, 0, wrongNonce
	}
	i, ok := s.claims[internal]
	if !ok || !s.slots[i].carries(proto) {
		i = s.ownSlotLocked(proto, internal)
		if i < 0 {
			i = s.freeSlotLocked(proto, internal, suggested)
		}
		if i < 0 && strict && suggested != 0 {
			return Slot{}, 0, notThatPort // the port it insists on is not free (RFC 6887 section 13.2)
		}
		if i < 0 {
			return Slot{}, 0, allTaken
		}
	}
	if strict && suggested != 0 && s.slots[i].Public != suggested {
		return Slot{}, 0, notThatPort
	}
	if lifetime > s.cfg.MaxLifetime {
		lifetime = s.cfg.MaxLifetime
	}
	s.claims[internal] = i
	m := &mapping{client: client, via: via, expires: s.cfg.Now().Add(lifetime)}
	if nonce != nil {
		m.nonce = *nonce
	}
	if old, ok := s.maps[k]; !ok || old.client != client {
		s.log.Info("an app asked for a port: given one vpnfwd holds", "via", via, "protocol", proto, "internal_port", internal,
			"public_port", s.slots[i].Public, "client", client.String(), "lifetime", lifetime.String())
	}
	s.maps[k] = m
	return s.slots[i], lifetime, granted
}

// ownSlotLocked is the slot whose port is internal itself (an app that
// listens on the forwarded port, as a torrent client does once vpnfwd
// set its listening port): it is that app's, whoever claimed it before,
// whose mapping ends here. -1 if none.
func (s *Server) ownSlotLocked(proto string, internal uint16) int {
	for i, sl := range s.slots {
		if (sl.Public != internal && sl.Local != internal) || !sl.carries(proto) || (sl.Taken && sl.Target != internal) {
			continue
		}
		for other, j := range s.claims {
			if j == i && other != internal {
				delete(s.claims, other)
				delete(s.maps, key{"tcp", other})
				delete(s.maps, key{"udp", other})
				s.log.Info("an app listening on the forwarded port itself takes it from the app that had it", "port", sl.Public, "from_internal_port", other)
			}
		}
		return i
	}
	return -1
}

// freeSlotLocked is a slot carrying proto that no other internal port
// claims: the one vpnfwd's configuration already sends to internal, else
// the suggested public port if it is one, else the first; -1 if none.
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
		if taken[i] || sl.Taken || !sl.carries(proto) {
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

// unmapLocked deletes (proto, internal) (internal 0: every mapping of
// proto; proto "": of both), as a lifetime-0 request asks.
func (s *Server) unmapLocked(proto string, internal uint16, nonce *[12]byte) grant {
	for k, m := range s.maps {
		if (proto != "" && k.proto != proto) || (internal != 0 && k.internal != internal) {
			continue
		}
		if nonce != nil && m.via == "pcp" && m.nonce != *nonce {
			if internal != 0 {
				return wrongNonce
			}
			continue
		}
		delete(s.maps, k)
		s.log.Info("an app gave its port mapping up", "protocol", k.proto, "internal_port", k.internal)
	}
	s.releaseLocked()
	return granted
}

// bucket is one client's request allowance.
type bucket struct {
	tokens float64
	at     time.Time
}

// allow takes one request from client's allowance.
func (s *Server) allowLocked(client netip.Addr) bool {
	now := s.cfg.Now()
	b := s.rates[client]
	burst := float64(2 * s.cfg.RequestsPerSecond)
	if b == nil {
		if len(s.rates) >= 1024 {
			return false
		}
		b = &bucket{tokens: burst, at: now}
		s.rates[client] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*float64(s.cfg.RequestsPerSecond))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
