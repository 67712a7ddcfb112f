package portmap

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for the server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	app    = netip.MustParseAddrPort("10.2.0.2:40000")
	public = netip.MustParseAddr("198.51.100.9")
)

func newServer(t *testing.T) (*Server, *clock, *[][]Mapping) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	var heard [][]Mapping
	s := New(Config{Now: c.now, RequestsPerSecond: 1000, Changed: func(m []Mapping) { heard = append(heard, m) }})
	return s, c, &heard
}

// pmpMap is a NAT-PMP mapping request (RFC 6886 section 3.3).
func pmpMap(proto string, internal, suggested uint16, lifetime uint32) []byte {
	b := make([]byte, 12)
	b[1] = map[string]byte{"udp": 1, "tcp": 2}[proto]
	binary.BigEndian.PutUint16(b[4:], internal)
	binary.BigEndian.PutUint16(b[6:], suggested)
	binary.BigEndian.PutUint32(b[8:], lifetime)
	return b
}

type pmpReply struct {
	op                 byte
	result             uint16
	epoch              uint32
	internal, external uint16
	lifetime           uint32
}

func parsePMP(t *testing.T, b []byte) pmpReply {
	t.Helper()
	if len(b) != 16 || b[0] != 0 {
		t.Fatalf("NAT-PMP mapping reply %x", b)
	}
	return pmpReply{b[1], binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint16(b[8:]), binary.BigEndian.Uint16(b[10:]), binary.BigEndian.Uint32(b[12:])}
}

// pcpMap is a PCP MAP request written from RFC 6887 sections 7.1 and
// 11.1 (no Debian package has a PCP client), with options appended.
func pcpMap(client netip.Addr, nonce byte, proto byte, internal, suggested uint16, lifetime uint32, opts ...[]byte) []byte {
	b := make([]byte, 60)
	b[0], b[1] = 2, 1
	binary.BigEndian.PutUint32(b[4:], lifetime)
	ca := client.As16()
	copy(b[8:24], ca[:])
	for i := 24; i < 36; i++ {
		b[i] = nonce
	}
	b[36] = proto
	binary.BigEndian.PutUint16(b[40:], internal)
	binary.BigEndian.PutUint16(b[42:], suggested)
	for _, o := range opts {
		b = append(b, o...)
	}
	return b
}

type pcpReply struct {
	result   byte
	lifetime uint32
	epoch    uint32
	internal uint16
	external uint16
	extAddr  netip.Addr
}

func parsePCP(t *testing.T, b []byte) pcpReply {
	t.Helper()
	if len(b) < 24 || b[0] != 2 || b[1]&0x80 == 0 || len(b)%4 != 0 {
		t.Fatalf("PCP response %x", b)
	}
	r := pcpReply{result: b[3], lifetime: binary.BigEndian.Uint32(b[4:]), epoch: binary.BigEndian.Uint32(b[8:])}
	for _, x := range b[12:24] {
		if x != 0 {
			t.Fatalf("reserved header octets not zero: %x", b)
		}
	}
	if len(b) >= 60 {
		r.internal, r.external = binary.BigEndian.Uint16(b[40:]), binary.BigEndian.Uint16(b[42:])
		r.extAddr = netip.AddrFrom16([16]byte(b[44:60])).Unmap()
	}
	return r
}

// An app maps TCP and UDP of its port: both get the one held port (the
// app's own port is redirected there), and Changed hears it.
func TestNATPMPGivesTheHeldPort(t *testing.T) {
	s, _, heard := newServer(t)
	if r := parsePMP(t, s.Handle(pmpMap("udp", 6881, 6881, 3600), app)); r.result != pmpNetworkFailure || r.external != 0 {
		t.Fatalf("with no port held: %+v", r)
	}
	ext := s.Handle([]byte{0, 0}, app)
	if len(ext) != 12 || ext[1] != 128 || binary.BigEndian.Uint16(ext[2:]) != pmpNetworkFailure {
		t.Fatalf("external address with none known: %x", ext)
	}
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
	for _, proto := range []string{"udp", "tcp"} {
		r := parsePMP(t, s.Handle(pmpMap(proto, 6881, 6881, 3600), app))
		if r.op != 128+map[string]byte{"udp": 1, "tcp": 2}[proto] || r.result != 0 || r.internal != 6881 || r.external != 40001 || r.lifetime != 120 {
			t.Fatalf("%s: %+v", proto, r)
		}
	}
	ext = s.Handle([]byte{0, 0}, app)
	if len(ext) != 12 || binary.BigEndian.Uint16(ext[2:]) != 0 || netip.AddrFrom4([4]byte(ext[8:])) != public {
		t.Fatalf("external address: %x", ext)
	}
	ms := s.Mappings()
	if len(ms) != 2 || ms[0].Proto != "tcp" || ms[1].Proto != "udp" || ms[0].Public != 40001 || ms[0].Internal != 6881 || ms[0].Via != "nat-pmp" {
		t.Fatalf("mappings %+v", ms)
	}
	if len(*heard) == 0 || len((*heard)[len(*heard)-1]) != 2 {
		t.Fatalf("Changed heard %+v", *heard)
	}
}

// A second app while the one held port is taken gets "out of resources"
// (NAT-PMP) or NO_RESOURCES (PCP), never a port that is not forwarded;
// once the first app deletes its mappings, the second gets the port.
func TestSecondAppGetsNoResourcesThenThePort(t *testing.T) {
	s, _, _ := newServer(t)
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
	parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 3600), app))
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 7000, 0, 3600), app)); r.result != pmpNoResources || r.external != 0 || r.lifetime != 0 {
		t.Fatalf("second app (NAT-PMP): %+v", r)
	}
	other := netip.MustParseAddrPort("10.2.0.2:40002")
	if r := parsePCP(t, s.Handle(pcpMap(other.Addr(), 7, 6, 7000, 0, 3600), other)); r.result != pcpNoResources || r.lifetime != shortError {
		t.Fatalf("second app (PCP): %+v", r)
	}
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 0), app)); r.result != 0 || r.external != 0 || r.lifetime != 0 || r.internal != 6881 {
		t.Fatalf("delete: %+v", r)
	}
	if len(s.Mappings()) != 0 || s.Claimed(0) {
		t.Fatalf("after delete: %+v", s.Mappings())
	}
	r := parsePCP(t, s.Handle(pcpMap(other.Addr(), 7, 6, 7000, 0, 600), other))
	if r.result != 0 || r.external != 40001 || r.internal != 7000 || r.extAddr != public || r.lifetime != 120 {
		t.Fatalf("second app after the first left: %+v", r)
	}
}

// With several held ports (Proton's --ports-count), each app gets its
// own, the one it suggests when free.
func TestSeveralHeldPorts(t *testing.T) {
	s, _, _ := newServer(t)
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}, {Public: 40002, Local: 40002}})
	a := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 40002, 60), app))
	b := parsePMP(t, s.Handle(pmpMap("tcp", 8080, 0, 60), app))
	c := parsePMP(t, s.Handle(pmpMap("tcp", 9000, 0, 60), app))
	if a.external != 40002 || b.external != 40001 || c.result != pmpNoResources {
		t.Fatalf("%+v %+v %+v", a, b, c)
	}
}

// The epoch counts seconds and starts again when the held port moves;
// the app's mapping follows its slot to the new port at once.
func TestEpochAndPortChange(t *testing.T) {
	s, clk, heard := newServer(t)
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
	parsePMP(t, s.Handle(pmpMap("udp", 6881, 0, 3600), app))
	clk.add(50 * time.Second)
	if r := parsePMP(t, s.Handle(pmpMap("udp", 6881, 0, 3600), app)); r.epoch != 50 || r.external != 40001 {
		t.Fatalf("renewal: %+v", r)
	}
	s.SetPorts(public, []Slot{{Public: 40777, Local: 40777}})
	last := (*heard)[len(*heard)-1]
	if len(last) != 1 || last[0].Public != 40777 || last[0].Internal != 6881 {
		t.Fatalf("after the port moved Changed heard %+v", last)
	}
	if r := parsePMP(t, s.Handle(pmpMap("udp", 6881, 0, 3600), app)); r.epoch != 0 || r.external != 40777 {
		t.Fatalf("after the port moved: %+v", r)
	}
}

// A mapping not renewed goes when its lifetime runs out.
func TestMappingExpires(t *testing.T) {
	s, clk, heard := newServer(t)
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
	parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 5), app))
	clk.add(4 * time.Second)
	s.Expire()
	if len(s.Mappings()) != 1 {
		t.Fatal("expired early")
	}
	clk.add(time.Second)
	s.Expire()
	if len(s.Mappings()) != 0 || s.Claimed(0) || len((*heard)[len(*heard)-1]) != 0 {
		t.Fatalf("not expired: %+v", s.Mappings())
	}
}

// PCP: a MAP with another nonce for the same mapping is refused; the
// right nonce deletes it; ANNOUNCE answers; errors are as RFC 6887 says.
func TestPCPResults(t *testing.T) {
	s, _, _ := newServer(t)
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
	c := app.Addr()
	if r := parsePCP(t, s.Handle(pcpMap(c, 1, 17, 6881, 0, 600), app)); r.result != 0 || r.external != 40001 {
		t.Fatalf("map: %+v", r)
	}
	if r := parsePCP(t, s.Handle(pcpMap(c, 2, 17, 6881, 0, 600), app)); r.result != pcpNotAuthorized {
		t.Fatalf("another nonce: %+v", r)
	}
	if r := parsePCP(t, s.Handle(pcpMap(c, 2, 17, 6881, 0, 0), app)); r.result != pcpNotAuthorized || len(s.Mappings()) != 1 {
		t.Fatalf("delete with another nonce: %+v", r)
	}
	if r := parsePCP(t, s.Handle(pcpMap(c, 1, 17, 6881, 0, 0), app)); r.result != 0 || r.lifetime != 0 || len(s.Mappings()) != 0 {
		t.Fatalf("delete: %+v %+v", r, s.Mappings())
	}
	announce := pcpMap(c, 0, 0, 0, 0, 0)[:24]
	announce[1] = 0
	if r := s.Handle(announce, app); len(r) != 24 || r[3] != 0 || r[1] != 0x80 {
		t.Fatalf("announce: %x", r)
	}
	preferFailure := []byte{optPreferFailure, 0, 0, 0}
	thirdParty := append([]byte{optThirdParty, 0, 0, 16}, make([]byte, 16)...)
	optional := []byte{200, 0, 0, 1, 9, 0, 0, 0}
	for _, tc := range []struct {
		name string
		req  []byte
		want byte
	}{
		{"wrong client address", pcpMap(netip.MustParseAddr("10.9.9.9"), 1, 6, 6881, 0, 600), pcpAddrMismatch},
		{"version 1", append([]byte{1}, pcpMap(c, 1, 6, 6881, 0, 600)[1:]...), pcpUnsuppVersion},
		{"PEER", append([]byte{2, 2}, pcpMap(c, 1, 6, 6881, 0, 600)[2:]...), pcpUnsuppOpcode},
		{"short", pcpMap(c, 1, 6, 6881, 0, 600)[:20], pcpMalformedReq},
		{"not a multiple of 4", pcpMap(c, 1, 6, 6881, 0, 600)[:58], pcpMalformedReq},
		{"MAP too short", pcpMap(c, 1, 6, 6881, 0, 600)[:56], pcpMalformedReq},
		{"SCTP", pcpMap(c, 1, 132, 6881, 0, 600), pcpUnsuppProtocol},
		{"all ports", pcpMap(c, 1, 6, 0, 0, 600), pcpUnsuppProtocol},
		{"THIRD_PARTY", pcpMap(c, 1, 6, 6881, 0, 600, thirdParty), pcpUnsuppOption},
		{"option overruns", pcpMap(c, 1, 6, 6881, 0, 600, []byte{optPreferFailure, 0, 0, 8}), pcpMalformedOpt},
		{"PREFER_FAILURE, not held", pcpMap(c, 1, 6, 6881, 41000, 600, preferFailure), pcpCannotProvide},
		{"PREFER_FAILURE, held", pcpMap(c, 3, 6, 6882, 40001, 600, preferFailure), pcpSuccess},
		{"optional option, ignored ", pcpMap(c, 3, 17, 6882, 0, 600, optional), pcpSuccess},
		{"PREFER_FAILURE, every port taken", pcpMap(c, 4, 6, 6883, 41000, 600, preferFailure), pcpCannotProvide},
		{"every port taken", pcpMap(c, 5, 6, 6883, 0, 600), pcpNoResources},
	} {
		r := s.Handle(tc.req, app)
		if got := parsePCP(t, r); got.result != tc.want {
			t.Errorf("%s: result %d, want %d (%x)", tc.name, got.result, tc.want, r)
		}
	}
	if r := s.Handle(append([]byte{2, 0x81}, make([]byte, 58)...), app); r != nil {
		t.Errorf("a response was answered: %x", r)
	}
	if r := s.Handle([]byte{0, 9}, app); len(r) != 8 || r[1] != 128+9 || binary.BigEndian.Uint16(r[2:]) != pmpUnsupportedOp {
		t.Errorf("NAT-PMP unknown opcode: %x", r)
	}
	if r := s.Handle([]byte{0, 1, 0, 0}, app); r != nil {
		t.Errorf("NAT-PMP runt answered: %x", r)
	}
}

// A client over its rate is dropped, not answered; another is not.
func TestRateLimited(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	s := New(Config{Now: c.now})
	answered := 0
	for i := 0; i < 200; i++ {
		if s.Handle([]byte{0, 0}, app) != nil {
			answered++
		}
	}
	if answered != 40 {
		t.Errorf("%d of 200 answered at once, want the burst of 40", answered)
	}
	if s.Handle([]byte{0, 0}, netip.MustParseAddrPort("10.2.0.3:1")) == nil {
		t.Error("another client was refused")
	}
	c.add(time.Second)
	if s.Handle([]byte{0, 0}, app) == nil {
		t.Error("still refused a second later")
	}
}

// Nothing a client sends panics, and no answer is larger than PCP's
// 1100 octets.
func FuzzHandle(f *testing.F) {
	f.Add(pmpMap("tcp", 6881, 0, 60))
	f.Add(pcpMap(app.Addr(), 1, 6, 6881, 0, 600, []byte{optPreferFailure, 0, 0, 0}))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := New(Config{RequestsPerSecond: 1 << 20})
		s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
		if r := s.Handle(b, app); len(r) > pcpMaxLen {
			t.Fatalf("answer of %d octets", len(r))
		}
	})
}

// A held port vpnfwd's configuration sends elsewhere (--forward
// HOST:PORT) is not an app's to have, except for the app on that port.
func TestTakenSlot(t *testing.T) {
	s, _, _ := newServer(t)
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001, Taken: true, Target: 8080}})
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 60), app)); r.result != pmpNoResources {
		t.Fatalf("another app: %+v", r)
	}
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 8080, 0, 60), app)); r.result != 0 || r.external != 40001 {
		t.Fatalf("the configured service: %+v", r)
	}
}

// The app listening on the forwarded port itself (a torrent client whose
// listening port vpnfwd set) has it, whoever mapped it before.
func TestAppOnTheForwardedPortWins(t *testing.T) {
	s, _, _ := newServer(t)
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
	parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 60), app))
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 40001, 0, 60), app)); r.result != 0 || r.external != 40001 {
		t.Fatalf("the app on 40001: %+v", r)
	}
	if ms := s.Mappings(); len(ms) != 1 || ms[0].Internal != 40001 {
		t.Fatalf("mappings %+v", ms)
	}
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 60), app)); r.result != pmpNoResources {
		t.Fatalf("the app that had it, renewing: %+v", r)
	}
}

// TestChangedInOrder: apps mapping and unmapping at once, Changed's
// last call is the table in force (a later table is never overtaken by
// an older one), and its calls never overlap.
func TestChangedInOrder(t *testing.T) {
	var mu sync.Mutex
	var last []Mapping
	var inside, overlapped bool
	s := New(Config{RequestsPerSecond: 1000, Changed: func(ms []Mapping) {
		mu.Lock()
		overlapped = overlapped || inside
		inside = true
		mu.Unlock()
		mu.Lock()
		last, inside = ms, false
		mu.Unlock()
	}})
	var slots []Slot
	for i := range uint16(8) {
		slots = append(slots, Slot{Public: 5000 + i, Local: 5000 + i})
	}
	s.SetPorts(public, slots)
	var wg sync.WaitGroup
	for i := range uint16(8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := IGDOwner{Addr: netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})}
			for range 50 {
				if _, err := s.MapIGD(IGDRequest{Proto: "tcp", Internal: 7000 + i, External: 5000 + i, Owner: o}); err != nil {
					t.Error(err)
					return
				}
				s.UnmapIGD("tcp", 5000+i, o)
			}
			s.MapIGD(IGDRequest{Proto: "tcp", Internal: 7000 + i, External: 5000 + i, Owner: o})
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if now := s.Mappings(); len(last) != len(now) || len(now) != 8 {
		t.Errorf("Changed last heard %d mappings, %d in force", len(last), len(now))
	}
	if overlapped {
		t.Error("Changed was called again before it returned")
	}
}
