package portmap

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

var (
	igdApp      = IGDOwner{Addr: netip.MustParseAddr("127.0.0.1"), UID: 1000, UIDOK: true}
	igdStranger = IGDOwner{Addr: netip.MustParseAddr("127.0.0.1"), UID: 1001, UIDOK: true}
)

// An IGD client gets exactly the held port or 718: AddPortMapping of the
// held port succeeds, of any other port conflicts; AddAnyPortMapping
// returns the held port; with none held, Action Failed.
func TestIGDGivesOnlyTheHeldPort(t *testing.T) {
	s, _, _ := ownedServer()
	steps := []struct {
		what string
		req  IGDRequest
		want error
		port uint16
	}{
		{"another external port", IGDRequest{Proto: "tcp", Internal: 7000, External: 7000, Owner: igdApp}, ErrConflict, 0},
		{"the held port", IGDRequest{Proto: "tcp", Internal: 7000, External: 40001, Owner: igdApp}, nil, 40001},
		{"its UDP twin", IGDRequest{Proto: "udp", Internal: 7000, External: 40001, Owner: igdApp}, nil, 40001},
		{"renewal", IGDRequest{Proto: "tcp", Internal: 7000, External: 40001, Lease: time.Hour, Owner: igdApp}, nil, 40001},
		{"the same internal port elsewhere", IGDRequest{Proto: "tcp", Internal: 7000, External: 40002, Owner: igdApp}, ErrConflict, 0},
		{"a stranger's AddAny", IGDRequest{Proto: "tcp", Internal: 7001, Any: true, Owner: igdStranger}, ErrNoneFree, 0},
		{"a stranger's Add of the held port", IGDRequest{Proto: "tcp", Internal: 7001, External: 40001, Owner: igdStranger}, ErrConflict, 0},
		{"a stranger replacing the mapping", IGDRequest{Proto: "tcp", Internal: 7000, External: 40001, Owner: igdStranger}, ErrConflict, 0},
	}
	for _, st := range steps {
		m, err := s.MapIGD(st.req)
		if !errors.Is(err, st.want) || (err == nil && m.Public != st.port) {
			t.Fatalf("%s: %+v, %v; want port %d, %v", st.what, m, err, st.port, st.want)
		}
	}
	if ms := s.Mappings(); len(ms) != 2 || ms[0].Via != ViaUPnP || ms[0].Internal != 7000 {
		t.Fatalf("mappings %+v", ms)
	}
	empty := New(Config{})
	if _, err := empty.MapIGD(IGDRequest{Proto: "tcp", Internal: 7000, Any: true, Owner: igdApp}); !errors.Is(err, ErrNoPort) {
		t.Fatalf("nothing held: %v", err)
	}
	s2, _, _ := ownedServer()
	if m, err := s2.MapIGD(IGDRequest{Proto: "udp", Internal: 7000, External: 9999, Any: true, Owner: igdApp}); err != nil || m.Public != 40001 {
		t.Fatalf("AddAny: %+v, %v", m, err)
	}
}

// One table, one owner per mapping: NAT-PMP and PCP cannot remove or
// take an IGD mapping, the IGD cannot remove or take theirs, and another
// user's IGD client cannot delete it; its owner can.
func TestIGDOwnership(t *testing.T) {
	s, _, _ := ownedServer()
	if _, err := s.MapIGD(IGDRequest{Proto: "tcp", Internal: 7000, External: 40001, Owner: igdApp}); err != nil {
		t.Fatal(err)
	}
	for _, req := range [][]byte{pmpMap("tcp", 7000, 0, 0), pmpMap("tcp", 0, 0, 0), pmpMap("tcp", 7000, 40001, 3600), pmpMap("tcp", 7001, 40001, 3600)} {
		s.Handle(req, attacker)
	}
	for _, req := range [][]byte{pcpMap(attacker.Addr(), 9, 6, 7000, 0, 0), pcpMap(attacker.Addr(), 9, 0, 0, 0, 0), pcpMap(attacker.Addr(), 9, 6, 7000, 40001, 60)} {
		s.Handle(req, attacker)
	}
	if err := s.UnmapIGD("tcp", 40001, igdStranger); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("another user's delete: %v", err)
	}
	if err := s.UnmapIGD("tcp", 40001, IGDOwner{Addr: igdApp.Addr}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("a delete whose user is unknown: %v", err)
	}
	if ms := s.Mappings(); len(ms) != 1 || ms[0].Via != ViaUPnP || ms[0].Internal != 7000 {
		t.Fatalf("after the others' tries: %+v", ms)
	}
	if err := s.UnmapIGD("udp", 40001, igdApp); !errors.Is(err, ErrNoSuchEntry) {
		t.Fatalf("delete of a mapping that is not there: %v", err)
	}
	if err := s.UnmapIGD("tcp", 40001, igdApp); err != nil || len(s.Mappings()) != 0 || s.Claimed(0) {
		t.Fatalf("the owner's delete: %v, %+v", err, s.Mappings())
	}

	// The other way round: a NAT-PMP mapping is not the IGD's to take
	// or remove.
	parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 60), service))
	if err := s.UnmapIGD("tcp", 40001, igdApp); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("IGD delete of a NAT-PMP mapping: %v", err)
	}
	if _, err := s.MapIGD(IGDRequest{Proto: "tcp", Internal: 6881, External: 40001, Owner: igdApp}); !errors.Is(err, ErrConflict) {
		t.Fatalf("IGD map of a NAT-PMP mapping: %v", err)
	}
	if ms := s.Mappings(); len(ms) != 1 || ms[0].Via != "nat-pmp" {
		t.Fatalf("mappings %+v", ms)
	}
}

// An IGD mapping lives while its app listens on the internal port (a
// "permanent" lease too), at most to its lease's end, and ends
// MaxLifetime after the app stops listening.
func TestIGDMappingLivesWithItsApp(t *testing.T) {
	s, l, c := ownedServer()
	l.set(7000, true)
	if _, err := s.MapIGD(IGDRequest{Proto: "tcp", Internal: 7000, External: 40001, Owner: igdApp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MapIGD(IGDRequest{Proto: "udp", Internal: 7000, External: 40001, Lease: 5 * time.Minute, Owner: igdApp}); err != nil {
		t.Fatal(err)
	}
	for range 4 { // 4 minutes
		c.add(time.Minute)
		s.Expire()
	}
	if ms := s.Mappings(); len(ms) != 2 || !ms[0].LeaseEnd.IsZero() {
		t.Fatalf("while the app listens: %+v", ms)
	}
	c.add(90 * time.Second)
	s.Expire()
	if ms := s.Mappings(); len(ms) != 1 || ms[0].Proto != "tcp" {
		t.Fatalf("after the UDP lease's end: %+v", ms)
	}
	l.set(7000, false)
	c.add(time.Minute)
	s.Expire()
	if len(s.Mappings()) != 1 {
		t.Fatal("ended at once when the app stopped listening")
	}
	c.add(time.Minute + time.Second)
	s.Expire()
	if ms := s.Mappings(); len(ms) != 0 || s.Claimed(0) {
		t.Fatalf("2 minutes after the app left: %+v", ms)
	}
}

// TCPOwner finds the user of a connection's client socket in the
// kernel's table.
func TestTCPOwnerOnThisKernel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local, remote := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	ps := ProcSockets("/proc/self/net")
	if uid, ok := ps.TCPOwner(local, remote); !ok || uid != uint32(os.Getuid()) {
		t.Errorf("TCPOwner(%s, %s) = %d %v, want %d", local, remote, uid, ok, os.Getuid())
	}
	if _, ok := ps.TCPOwner(remote, netip.AddrPortFrom(local.Addr(), local.Port()+1)); ok {
		t.Error("a connection that is not there was found")
	}
}
