package portmap

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// listeners is a fake of the namespace's socket tables (ProcSockets
// reads the real ones): the ports the test says a program listens on,
// and the requesting sockets' users.
type listeners struct {
	mu    sync.Mutex
	ports map[uint16]bool
	uids  map[netip.AddrPort]uint32
}

func (l *listeners) socket(a netip.AddrPort, uid uint32, open bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.uids == nil {
		l.uids = map[netip.AddrPort]uint32{}
	}
	if open {
		l.uids[a] = uid
	} else {
		delete(l.uids, a)
	}
}

func (l *listeners) UDPOwner(a netip.AddrPort) (uint32, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	uid, ok := l.uids[a]
	return uid, ok
}

func (l *listeners) set(port uint16, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ports == nil {
		l.ports = map[uint16]bool{}
	}
	l.ports[port] = on
}

func (l *listeners) Listening(port uint16) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ports[port]
}

func ownedServer() (*Server, *listeners, *clock) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	l := &listeners{}
	s := New(Config{Now: c.now, RequestsPerSecond: 1000, Sockets: l})
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
	return s, l, c
}

var (
	service  = netip.MustParseAddrPort("10.2.0.2:40100") // the app the user runs
	attacker = netip.MustParseAddrPort("10.2.0.2:40200") // another program in the pod, same address
)

// The attack: a service listens on the forwarded port (vpnfwd set
// it there); another program asks for that port for its own internal
// port. Refused by both protocols; the service asking for its own port
// gets it.
func TestListenerKeepsTheForwardedPort(t *testing.T) {
	s, l, _ := ownedServer()
	l.set(40001, true)
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6666, 40001, 3600), attacker)); r.result != pmpNoResources {
		t.Fatalf("NAT-PMP for another port while a program listens on 40001: %+v", r)
	}
	if r := parsePCP(t, s.Handle(pcpMap(attacker.Addr(), 9, 6, 6666, 40001, 3600), attacker)); r.result != pcpNoResources {
		t.Fatalf("PCP for another port while a program listens on 40001: %+v", r)
	}
	if len(s.Mappings()) != 0 {
		t.Fatalf("mappings %+v", s.Mappings())
	}
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 40001, 0, 3600), service)); r.result != 0 || r.external != 40001 {
		t.Fatalf("the program on 40001 asking: %+v", r)
	}
}

// A working mapping is not taken by a program that starts listening on
// the held port afterwards, nor by that program asking for it (found in
// review: binding the port, even a UDP socket for a moment, ended the
// app's mapping, a PCP one too). It goes only once its app stops
// listening.
func TestListenerStartedLaterTakesNothing(t *testing.T) {
	s, l, _ := ownedServer()
	l.set(7000, true)
	if r := parsePCP(t, s.Handle(pcpMap(service.Addr(), 1, 6, 7000, 0, 600), service)); r.result != 0 || r.external != 40001 {
		t.Fatalf("free port: %+v", r)
	}
	l.set(40001, true) // another program binds the held port
	s.Expire()
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 40001, 0, 60), attacker)); r.result != pmpNoResources {
		t.Errorf("the program on 40001 asking: %+v", r)
	}
	if ms := s.Mappings(); len(ms) != 1 || ms[0].Internal != 7000 {
		t.Fatalf("the app's mapping after another program bound the held port: %+v", ms)
	}
	l.set(7000, false) // the app is gone
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 40001, 0, 60), attacker)); r.result != 0 {
		t.Errorf("after the app left: %+v", r)
	}
}

// Another socket's renewal never shortens a NAT-PMP mapping (found in
// review: a lifetime of 1 s from a stranger ended the app's mapping, and
// the stranger mapped the freed port).
func TestRenewalDoesNotShorten(t *testing.T) {
	s, _, c := ownedServer()
	parsePMP(t, s.Handle(pmpMap("tcp", 7000, 0, 120), service))
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 7000, 0, 1), attacker)); r.result != 0 || r.lifetime < 119 {
		t.Errorf("a stranger's 1-s renewal: %+v", r)
	}
	c.add(5 * time.Second)
	s.Expire()
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6666, 0, 120), attacker)); r.result != pmpNoResources || len(s.Mappings()) != 1 {
		t.Errorf("the stranger mapping next: %+v, mappings %+v", r, s.Mappings())
	}
}

// Asking for the held port itself takes it from the app that had it only
// when something listens there, or the app that had it no longer
// listens: a program cannot silence a working mapping by asking.
func TestAskingForTheHeldPortCannotSilenceAWorkingMapping(t *testing.T) {
	s, l, _ := ownedServer()
	l.set(6881, true)
	parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 3600), service))
	for _, via := range []string{"nat-pmp", "pcp"} {
		var ok bool
		if via == "nat-pmp" {
			ok = parsePMP(t, s.Handle(pmpMap("tcp", 40001, 0, 3600), attacker)).result == 0
		} else {
			ok = parsePCP(t, s.Handle(pcpMap(attacker.Addr(), 9, 6, 40001, 0, 3600), attacker)).result == 0
		}
		if ms := s.Mappings(); ok || len(ms) != 1 || ms[0].Internal != 6881 {
			t.Fatalf("%s for 40001 with nothing there: granted %v, mappings %+v", via, ok, ms)
		}
	}
	l.set(6881, false) // the app that had it is gone
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 40001, 0, 3600), attacker)); r.result != 0 {
		t.Fatalf("after the app left: %+v", r)
	}
}

// NAT-PMP cannot walk round PCP's nonce: its delete-all leaves a PCP
// mapping, a delete or a map of that mapping is refused, and the next app
// gets nothing.
func TestNATPMPDoesNotTouchPCPMappings(t *testing.T) {
	s, _, _ := ownedServer()
	if r := parsePCP(t, s.Handle(pcpMap(service.Addr(), 1, 6, 6881, 0, 600), service)); r.result != 0 {
		t.Fatalf("PCP map: %+v", r)
	}
	steps := []struct {
		what string
		req  []byte
		want uint16
	}{
		{"delete all TCP (map 2 0 0 0)", pmpMap("tcp", 0, 0, 0), pmpSuccess},
		{"delete the PCP mapping", pmpMap("tcp", 6881, 0, 0), pmpRefused},
		{"map the PCP mapping's port", pmpMap("tcp", 6881, 0, 3600), pmpRefused},
		{"map another port", pmpMap("tcp", 7000, 0, 3600), pmpNoResources},
	}
	for _, st := range steps {
		if r := parsePMP(t, s.Handle(st.req, attacker)); r.result != st.want {
			t.Errorf("%s: result %d, want %d", st.what, r.result, st.want)
		}
		if ms := s.Mappings(); len(ms) != 1 || ms[0].Via != "pcp" || ms[0].Internal != 6881 {
			t.Fatalf("after %s: mappings %+v", st.what, ms)
		}
	}
	// And PCP does not touch NAT-PMP's: a PCP delete-all with any nonce
	// leaves them.
	s2, _, _ := ownedServer()
	parsePMP(t, s2.Handle(pmpMap("udp", 6881, 0, 3600), service))
	all := pcpMap(attacker.Addr(), 9, 0, 0, 0, 0)
	if r := parsePCP(t, s2.Handle(all, attacker)); r.result != 0 || len(s2.Mappings()) != 1 {
		t.Fatalf("PCP delete-all: %+v, mappings %+v", r, s2.Mappings())
	}
	if r := parsePCP(t, s2.Handle(pcpMap(attacker.Addr(), 9, 17, 6881, 0, 600), attacker)); r.result != pcpNotAuthorized {
		t.Fatalf("PCP map of a NAT-PMP mapping: %+v", r)
	}
}

// A NAT-PMP mapping is removed only by the socket that made it; another
// socket may renew it (natpmpc asks from a new socket each run), which
// does not make it that socket's.
func TestNATPMPDeleteOnlyByItsSocket(t *testing.T) {
	s, l, _ := ownedServer()
	l.socket(service, 1000, true)
	l.socket(attacker, 65534, true)
	parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 60), service))
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 0, 0, 0), attacker)); r.result != 0 || len(s.Mappings()) != 1 {
		t.Fatalf("another socket's delete-all: %+v, mappings %+v", r, s.Mappings())
	}
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 0), attacker)); r.result != pmpRefused || len(s.Mappings()) != 1 {
		t.Fatalf("another socket's delete: %+v", r)
	}
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 60), attacker)); r.result != 0 || r.external != 40001 {
		t.Fatalf("a renewal from another socket: %+v", r)
	}
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 0), attacker)); r.result != pmpRefused {
		t.Fatalf("the renewing socket's delete: %+v", r)
	}
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 0, 0, 0), service)); r.result != 0 || len(s.Mappings()) != 0 {
		t.Fatalf("the owner's delete-all: %+v, mappings %+v", r, s.Mappings())
	}
}

// Requests are limited per socket: one socket's flood does not silence
// another app on the same address, and a flood from thousands of sources
// (a full table) does not keep an app that asks from being answered.
func TestFloodsDoNotSilenceOtherApps(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	s := New(Config{Now: c.now})
	s.SetPorts(public, []Slot{{Public: 40001, Local: 40001}})
	for i := 0; i < 1000; i++ {
		s.Handle([]byte{0, 0}, attacker) // what is the external address?
	}
	if s.Handle(pmpMap("tcp", 6881, 0, 60), service) == nil {
		t.Fatal("one socket's flood silenced another app on the same address")
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 3000; i++ {
			from := netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("127.%d.%d.%d", 1+i/65536, i/256%256, i%256)), 9999)
			s.Handle([]byte{0, 0}, from)
			s.Handle([]byte{0, 0}, from)
		}
		if r := s.Handle(pmpMap("tcp", 6881, 0, 60), service); r == nil || parsePMP(t, r).result != 0 {
			t.Fatalf("round %d: the app got %x during a flood from 3,000 sources", round, r)
		}
		c.add(100 * time.Millisecond)
	}
}

// The kernel's tables as CachedSockets reads them: TCP sockets in LISTEN
// and any UDP socket bound to the port.
func TestPortInTable(t *testing.T) {
	tcp := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:9C41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1080 1 0 100 0 0 10 0
   1: 0100007F:1AE1 0100007F:9C42 01 00000000:00000000 00:00000000 00000000  1000        0 1081 1 0 100 0 0 10 0
`)
	udp := []byte(`   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000000000000000000000000000:1AE1 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 1090 2 0 0
`)
	// inTable puts b in a directory as the TCP table (listen) or the UDP
	// one, and asks whether port has a socket there.
	inTable := func(b []byte, port uint16, listen bool) bool {
		dir := t.TempDir()
		name := "udp"
		if listen {
			name = "tcp"
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
		return (&CachedSockets{Dir: dir}).Listening(port)
	}
	for _, c := range []struct {
		table  []byte
		port   uint16
		listen bool
		want   bool
	}{
		{tcp, 40001, true, true},  // 0x9C41 in LISTEN
		{tcp, 6881, true, false},  // 0x1AE1 only as a connection's end
		{tcp, 40002, true, false}, // a remote port is not ours
		{udp, 6881, false, true},
		{udp, 40001, false, false},
		{[]byte("garbage\n: : : :\n x y z w\n"), 0, true, false},
	} {
		if got := inTable(c.table, c.port, c.listen); got != c.want {
			t.Errorf("port %d in %.20q: %v, want %v", c.port, c.table, got, c.want)
		}
	}
	if (&CachedSockets{Dir: "/nonexistent"}).Listening(40001) {
		t.Error("an unreadable table has a listener")
	}
}

// natpmpc asks from a new socket each run: once the socket that made a
// NAT-PMP mapping is closed, a socket of the same user may delete it; a
// socket of another user may not, nor anyone while the maker's socket is
// open.
func TestNATPMPDeleteBySameUserOnceTheMakerLeft(t *testing.T) {
	s, l, _ := ownedServer()
	maker, later, stranger := netip.MustParseAddrPort("10.2.0.2:50001"), netip.MustParseAddrPort("10.2.0.2:50002"), netip.MustParseAddrPort("10.2.0.2:50003")
	l.socket(maker, 1000, true)
	l.socket(later, 1000, true)
	l.socket(stranger, 65534, true)
	parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 60), maker))
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 0), later)); r.result != pmpRefused {
		t.Fatalf("same user while the maker's socket is open: %+v", r)
	}
	l.socket(maker, 0, false) // natpmpc exited
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 0), stranger)); r.result != pmpRefused || len(s.Mappings()) != 1 {
		t.Fatalf("another user: %+v", r)
	}
	// Another user binds the maker's closed port and asks from it (found
	// in review: the address and port alone let it delete).
	l.socket(maker, 65534, true)
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 0), maker)); r.result != pmpRefused || len(s.Mappings()) != 1 {
		t.Fatalf("another user on the maker's old port: %+v", r)
	}
	l.socket(maker, 0, false)
	if r := parsePMP(t, s.Handle(pmpMap("tcp", 6881, 0, 0), later)); r.result != 0 || len(s.Mappings()) != 0 {
		t.Fatalf("same user after the maker left: %+v %+v", r, s.Mappings())
	}
}

// The tables of this machine's kernel, read afresh each time: a UDP
// socket's owner and a TCP listener are found, a closed socket is not.
func TestProcSocketsOnThisKernel(t *testing.T) {
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ua := u.LocalAddr().(*net.UDPAddr).AddrPort()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := uint16(l.Addr().(*net.TCPAddr).Port)
	ps := &CachedSockets{Dir: "/proc/self/net", TTL: time.Nanosecond}
	if uid, ok := ps.UDPOwner(ua); !ok || uid != uint32(os.Getuid()) {
		t.Errorf("UDP socket %s: uid %d %v, want %d", ua, uid, ok, os.Getuid())
	}
	if !ps.Listening(tp) || !ps.Listening(ua.Port()) {
		t.Errorf("listening on %d (TCP) and %d (UDP) not seen", tp, ua.Port())
	}
	u.Close()
	l.Close()
	if _, ok := ps.UDPOwner(ua); ok {
		t.Errorf("closed UDP socket %s still seen", ua)
	}
	if ps.Listening(tp) {
		t.Errorf("closed listener on %d still seen", tp)
	}
}

// CachedSockets against this machine's kernel: what a fresh reading finds,
// read at most once per TTL for Listening, and again early for a UDP
// socket made a moment ago.
func TestCachedSocketsOnThisKernel(t *testing.T) {
	c := &CachedSockets{Dir: "/proc/self/net", TTL: time.Hour}
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ua := u.LocalAddr().(*net.UDPAddr).AddrPort()
	if uid, ok := c.UDPOwner(ua); !ok || uid != uint32(os.Getuid()) {
		t.Errorf("UDP socket %s: %d %v", ua, uid, ok)
	}
	if !c.Listening(ua.Port()) {
		t.Errorf("UDP %d not seen", ua.Port())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if c.Listening(uint16(l.Addr().(*net.TCPAddr).Port)) {
		t.Error("a listener made after the reading is seen within the TTL: the tables were read again")
	}
	// A UDP socket made since the last reading is found on a miss.
	time.Sleep(150 * time.Millisecond) // past the early re-read's floor, not synchronisation
	u2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u2.Close()
	if _, ok := c.UDPOwner(u2.LocalAddr().(*net.UDPAddr).AddrPort()); !ok {
		t.Error("a new UDP socket is not found")
	}
}
