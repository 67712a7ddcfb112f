package forward

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// memNet stands in for the tunnel: ListenUDP returns real loopback sockets
// so a test plays the remote peers with ordinary UDP.
type memNet struct {
	mu  sync.Mutex
	pcs map[uint16]net.PacketConn
}

func (m *memNet) ListenUDP(ap netip.AddrPort) (net.PacketConn, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.pcs == nil {
		m.pcs = map[uint16]net.PacketConn{}
	}
	m.pcs[ap.Port()] = pc
	m.mu.Unlock()
	return pc, nil
}

func (m *memNet) addr(port uint16) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pcs[port].LocalAddr().String()
}

// udpService echoes with the sender's address so a test sees which local
// socket a flow uses.
func udpService(t *testing.T) (*net.UDPConn, uint16) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pc.WriteToUDP(append(buf[:n:n], " from "+from.String()...), from)
		}
	}()
	return pc, uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

func roundTrip(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	c.Write([]byte(msg))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply to %q: %v", msg, err)
	}
	return string(buf[:n])
}

func TestUDPFlowPerPeer(t *testing.T) {
	_, svcPort := udpService(t)
	m := &memNet{}
	b := NewBridge(m, BridgeConfig{TargetHost: "127.0.0.1", UDP: true, UDPIdle: 200 * time.Millisecond, MaxUDPFlows: 2})
	defer b.Close()
	if err := b.SetRoutes([]Route{{Listen: 5000, Target: svcPort}}); err != nil {
		t.Fatal(err)
	}
	peer := func() net.Conn {
		c, err := net.Dial("udp", m.addr(5000))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b2 := peer(), peer()
	ra1, rb := roundTrip(t, a, "a"), roundTrip(t, b2, "b")
	ra2 := roundTrip(t, a, "a")
	if ra1 != ra2 {
		t.Errorf("one peer used two local sockets: %q then %q", ra1, ra2)
	}
	if ra1[len("a"):] == rb[len("b"):] {
		t.Errorf("two peers shared a local socket: %q %q", ra1, rb)
	}
	if got := b.Stats().UDPFlows; got != 2 {
		t.Errorf("flows %d", got)
	}
	// A third peer evicts the idlest (bounded table).
	roundTrip(t, peer(), "c")
	if got := b.Stats().UDPFlows; got > 2 {
		t.Errorf("table grew past its bound: %d", got)
	}
	// Idle flows close.
	deadline := time.Now().Add(3 * time.Second)
	for b.Stats().UDPFlows != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle flows not closed: %d", b.Stats().UDPFlows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSetRoutesMovesUDPListener(t *testing.T) {
	_, svcPort := udpService(t)
	m := &memNet{}
	b := NewBridge(m, BridgeConfig{TargetHost: "127.0.0.1", UDP: true})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: svcPort}})
	old := m.addr(5000)
	b.SetRoutes([]Route{{Listen: 6000, Target: svcPort}})
	if c, err := net.Dial("udp", m.addr(6000)); err != nil || roundTrip(t, c, "x") == "" {
		t.Fatal("new port not bridged")
	}
	c, _ := net.Dial("udp", old)
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Error("old port still bridged")
	}
}

// fakeReq is a TCPRequest whose accepted side is one end of a real
// loopback TCP connection; the test holds the other end as the peer.
type fakeReq struct {
	port     uint16
	peer     netip.AddrPort // default 198.18.0.1:40000
	crowded  bool
	accepted chan net.Conn
	rejected chan struct{}
}

func (r *fakeReq) LocalAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("10.2.0.2"), r.port)
}
func (r *fakeReq) RemoteAddr() netip.AddrPort {
	if r.peer.IsValid() {
		return r.peer
	}
	return netip.MustParseAddrPort("198.18.0.1:40000")
}
func (r *fakeReq) Reject()       { close(r.rejected) }
func (r *fakeReq) Crowded() bool { return r.crowded }
func (r *fakeReq) Accept() (net.Conn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return nil, err
	}
	r.accepted <- peer
	return l.Accept()
}

func newReq(port uint16) *fakeReq {
	return &fakeReq{port: port, accepted: make(chan net.Conn, 1), rejected: make(chan struct{})}
}

func TestTCPRejectsWhenServiceDownOrPortUnknown(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now
	b := NewBridge(&memNet{}, BridgeConfig{TargetHost: "127.0.0.1", TCP: true})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: port}})
	for _, p := range []uint16{5000, 5001} {
		r := newReq(p)
		go b.HandleTCP(r)
		select {
		case <-r.rejected:
		case <-r.accepted:
			t.Fatalf("port %d: accepted with no service", p)
		case <-time.After(2 * time.Second):
			t.Fatalf("port %d: no answer", p)
		}
	}
	if s := b.Stats(); s.TCPRefused != 1 || s.TCPTotal != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestTCPHalfClose(t *testing.T) {
	// The service reads to EOF, then answers and closes: the peer's
	// half-close must reach it, and the answer must come back after it.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c)
		c.Write([]byte("got " + string(b)))
		c.Close()
	}()
	b := NewBridge(&memNet{}, BridgeConfig{TargetHost: "127.0.0.1", TCP: true})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: uint16(l.Addr().(*net.TCPAddr).Port)}})
	r := newReq(5000)
	go b.HandleTCP(r)
	peer := (<-r.accepted).(*net.TCPConn)
	defer peer.Close()
	peer.Write([]byte("request"))
	peer.CloseWrite()
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil || string(got) != "got request" {
		t.Fatalf("answer after half-close: %q %v", got, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for b.Stats().TCPOpen != 0 {
		if time.Now().After(deadline) {
			t.Fatal("connection still counted open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := b.Stats(); s.TCPTotal != 1 || s.BytesIn != 7 || s.BytesOut != 11 {
		t.Errorf("stats %+v", s)
	}
}

func TestPerPeerSource(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	first, again := PeerSource(a), PeerSource(a)
	if first != again || first == PeerSource(b) || !first.IsLoopback() {
		t.Fatalf("%s %s", PeerSource(a), PeerSource(b))
	}
	// TCP: the service sees the peer's own loopback address.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	br := NewBridge(&memNet{}, BridgeConfig{TargetHost: "127.0.0.1", TCP: true, UDP: true, PerPeer: true})
	defer br.Close()
	br.SetRoutes([]Route{{Listen: 5000, Target: uint16(l.Addr().(*net.TCPAddr).Port)}})
	r := newReq(5000)
	go br.HandleTCP(r)
	(<-r.accepted).Close()
	if got, want := <-seen, PeerSource(r.RemoteAddr().Addr()).String(); got != want {
		t.Errorf("service saw %s, want %s", got, want)
	}
}
