package demo

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/provider/natpmp"
)

// Gateway is a NAT-PMP server on the tunnel gateway. Each mapping opens the
// public port on the loopback address standing in for the server's public
// IP and forwards it into the tunnel to the client.
//
// Its behaviour follows RFC 6886 (3.3: a request for an internal port that
// is already mapped gets that mapping back, whatever port it suggests;
// internal port 0 with lifetime 0 deletes all the client's mappings of
// that protocol) and, in Proton mode, what Proton's gateways answer as
// reported by Proton's Linux client and gluetun: the public port is also
// the internal one, and the reply's internal port is that port or 0.
type Gateway struct {
	// ZeroInternalReply makes Proton-mode replies carry internal port 0
	// (the other shape seen in the field).
	ZeroInternalReply bool
	// RefuseInternalZero answers 2 (not authorized) to a mapping of
	// internal port 0, as miniupnpd does: its permission rules (Debian's
	// "allow 1024-65535 ...") name internal ports, and 0 is in none.
	RefuseInternalZero bool
	// SplitUDP makes the gateway never give UDP the port it suggests, as
	// a gateway whose UDP port is taken would: TCP and UDP end up apart.
	SplitUDP bool
	s        *Server
	proton   bool
	life     uint32
	public   netip.Addr
	pc       net.PacketConn
	mu       sync.Mutex
	start    time.Time
	maps     map[mapKey]*mapping
	// requests counts requests by opcode (read with Requests); History
	// keeps every mapping request in order (for tests; read under Lock).
	requests map[uint8]int
	History  []natpmp.MapRequest
	taken    map[uint16]bool // public ports someone else holds (Forget)
}

// Lock and Unlock guard the fields tests read and set.
func (g *Gateway) Lock()   { g.mu.Lock() }
func (g *Gateway) Unlock() { g.mu.Unlock() }

type mapKey struct {
	op       uint8
	client   netip.Addr
	internal uint16
}

type mapping struct {
	external uint16
	expires  time.Time
	fwd      *publicPort
}

func startGateway(s *Server, proton bool, life uint32, public netip.Addr) (*Gateway, error) {
	pc, err := s.Stack.ListenUDP(netip.AddrPortFrom(GatewayAddr, natpmp.Port))
	if err != nil {
		return nil, err
	}
	g := &Gateway{s: s, proton: proton, life: life, public: public, pc: pc, start: time.Now(),
		maps: map[mapKey]*mapping{}, requests: map[uint8]int{}}
	s.goFunc(g.serve)
	s.goFunc(g.expire)
	return g, nil
}

func (g *Gateway) close() {
	g.pc.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, m := range g.maps {
		m.fwd.shut()
		delete(g.maps, k)
	}
}

// Restart simulates a gateway reboot: mappings are lost and the epoch
// starts again from 0.
func (g *Gateway) Restart() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, m := range g.maps {
		m.fwd.shut()
		delete(g.maps, k)
	}
	g.start = time.Now()
}

// Forget drops every mapping but keeps the epoch counting, as miniupnpd
// does when restarted with system_uptime=yes (the setting Debian ships:
// its epoch is the system's uptime), or a gateway that cleans up one
// client's mappings. With taken, the forgotten public ports are then held
// by someone else, so the client cannot have them back.
func (g *Gateway) Forget(taken bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, m := range g.maps {
		m.fwd.shut()
		delete(g.maps, k)
		if taken {
			if g.taken == nil {
				g.taken = map[uint16]bool{}
			}
			g.taken[m.external] = true
		}
	}
}

// Requests returns how many requests with opcode op the gateway has had.
func (g *Gateway) Requests(op uint8) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests[op]
}

// Mapped returns the external port of the client's TCP mapping, 0 if none.
func (g *Gateway) Mapped(client netip.Addr) uint16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, m := range g.maps {
		if k.client == client && k.op == natpmp.OpMapTCP {
			return m.external
		}
	}
	return 0
}

// protonMaxPorts is how many ports Proton forwards to one client (its
// support pages and gluetun's multi-port change: up to 5). A request
// naming an internal port (gluetun asks for 56789, 56790, ...) gets its
// own mapping, on a public port of the gateway's choice.
const protonMaxPorts = 5

// count is how many mappings of op the client holds (g.mu held).
func (g *Gateway) count(op uint8, client netip.Addr) int {
	n := 0
	for k := range g.maps {
		if k.op == op && k.client == client {
			n++
		}
	}
	return n
}

func (g *Gateway) epoch() uint32 { return uint32(time.Since(g.start) / time.Second) }

func (g *Gateway) serve() {
	buf := make([]byte, 1100)
	for {
		n, from, err := g.pc.ReadFrom(buf)
		if err != nil {
			return // closed: gonet reports it as more than net.ErrClosed
		}
		src := addrOf(from)
		if out := g.handle(buf[:n], src.Addr()); out != nil {
			g.pc.WriteTo(out, from)
		}
	}
}

func addrOf(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (g *Gateway) handle(b []byte, client netip.Addr) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	op, req, err := natpmp.ParseRequest(b)
	g.requests[op]++
	var re natpmp.ResultError
	if errors.As(err, &re) {
		if re.Code == natpmp.ResultUnsupportedVersion {
			return []byte{0, 128 + op, 0, natpmp.ResultUnsupportedVersion, 0, 0, 0, 0}
		}
		return natpmp.MapReply{Op: op, Epoch: g.epoch()}.Marshal(re.Code)
	}
	if err != nil {
		return nil
	}
	if op == natpmp.OpExternal {
		return natpmp.ExternalReply{Epoch: g.epoch(), Addr: PublicIP}.Marshal(0)
	}
	g.History = append(g.History, req)
	reply := natpmp.MapReply{Op: op, Epoch: g.epoch(), Internal: req.Internal}
	if req.Lifetime == 0 {
		g.remove(op, client, req.Internal)
		return reply.Marshal(0)
	}
	internal := req.Internal
	if internal == 0 && g.RefuseInternalZero {
		return reply.Marshal(natpmp.ResultNotAuthorized)
	}
	key := mapKey{op, client, internal}
	m := g.maps[key]
	if m == nil && g.proton && internal == 0 {
		// Proton convention: internal 0; public and internal port equal.
		for k, mm := range g.maps {
			if k.op == op && k.client == client {
				m, key = mm, k
			}
		}
	}
	if m == nil {
		suggested := req.External
		if g.SplitUDP && op == natpmp.OpMapUDP {
			suggested = 0 // taken: a random port
		}
		if g.proton && g.count(op, client) >= protonMaxPorts {
			return reply.Marshal(natpmp.ResultOutOfResources)
		}
		ext := g.pick(op, suggested)
		if ext == 0 {
			return reply.Marshal(natpmp.ResultOutOfResources)
		}
		if g.proton && internal == 0 {
			internal = ext
			key = mapKey{op, client, internal}
		}
		fwd, err := g.s.openPublic(op, netip.AddrPortFrom(g.public, ext), netip.AddrPortFrom(client, internal))
		if err != nil {
			return reply.Marshal(natpmp.ResultNetworkFailure)
		}
		m = &mapping{external: ext, fwd: fwd}
		g.maps[key] = m
	}
	life := min(req.Lifetime, g.life)
	m.expires = time.Now().Add(time.Duration(life) * time.Second)
	reply.Internal, reply.External, reply.Lifetime = key.internal, m.external, life
	if g.proton && g.ZeroInternalReply {
		reply.Internal = 0
	}
	return reply.Marshal(0)
}

// pick chooses an external port: the suggested one if free, else random.
func (g *Gateway) pick(op uint8, suggested uint16) uint16 {
	used := func(p uint16) bool {
		for k, m := range g.maps {
			if k.op == op && m.external == p {
				return true
			}
		}
		return g.taken[p]
	}
	if suggested >= 1024 && !used(suggested) && g.s.publicFree(op, netip.AddrPortFrom(g.public, suggested)) {
		return suggested
	}
	for range 100 {
		p := uint16(30000 + rand.IntN(30000))
		if !used(p) && g.s.publicFree(op, netip.AddrPortFrom(g.public, p)) {
			return p
		}
	}
	return 0
}

func (g *Gateway) remove(op uint8, client netip.Addr, internal uint16) {
	for k, m := range g.maps {
		if k.op == op && k.client == client && (internal == 0 || k.internal == internal) {
			m.fwd.shut()
			delete(g.maps, k)
		}
	}
}

func (g *Gateway) expire() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-g.s.ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		for k, m := range g.maps {
			if time.Now().After(m.expires) {
				m.fwd.shut()
				delete(g.maps, k)
			}
		}
		g.mu.Unlock()
	}
}
