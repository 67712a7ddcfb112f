package forward

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tcpService accepts connections and echoes; it counts what it accepted.
func tcpService(t *testing.T) (uint16, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port), &n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// connect runs one fake connection through the bridge and returns the
// peer's end.
func connect(t *testing.T, b *Bridge, r *fakeReq) net.Conn {
	t.Helper()
	go b.HandleTCP(r)
	select {
	case c := <-r.accepted:
		t.Cleanup(func() { c.Close() })
		return c
	case <-r.rejected:
		t.Fatal("refused")
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	return nil
}

// alive reports whether the connection still echoes.
func alive(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		return false
	}
	_, err := c.Read(make([]byte, 1))
	return err == nil
}

func TestTCPBoundsEvictTheIdlest(t *testing.T) {
	port, _ := tcpService(t)
	b := NewBridge(&memNet{}, BridgeConfig{TargetHost: "127.0.0.1", TCP: true, MaxConns: 3, MaxConnsPerSource: 2})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: port}})
	from := func(ip string, port uint16) *fakeReq {
		r := newReq(5000)
		r.peer = netip.AddrPortFrom(netip.MustParseAddr(ip), port)
		return r
	}
	a1 := connect(t, b, from("198.18.0.1", 1))
	a2 := connect(t, b, from("198.18.0.1", 2))
	eventually(t, "two open", func() bool { return b.Stats().TCPOpen == 2 })
	alive(a1) // a2 is now the idlest from 198.18.0.1
	a3 := connect(t, b, from("198.18.0.1", 3))
	eventually(t, "per-source eviction", func() bool { return b.Stats().TCPEvicted == 1 })
	if alive(a2) || !alive(a1) || !alive(a3) {
		t.Fatal("per-source bound did not close the idlest connection of that source")
	}
	// The global bound: a newcomer from elsewhere still gets in.
	c1 := connect(t, b, from("198.18.0.2", 1))
	alive(c1)
	alive(a3) // a1 is the idlest overall now
	c2 := connect(t, b, from("198.18.0.3", 1))
	eventually(t, "global eviction", func() bool { return b.Stats().TCPEvicted == 2 })
	if alive(a1) || !alive(c2) {
		t.Fatal("global bound did not close the idlest connection")
	}
	if n := b.conns.len(); n != 3 {
		t.Errorf("table holds %d connections, bound 3", n)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	port, _ := tcpService(t)
	b := NewBridge(&memNet{}, BridgeConfig{TargetHost: "127.0.0.1", TCP: true, IdleTimeout: 100 * time.Millisecond})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: port}})
	c := connect(t, b, newReq(5000))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from an idle connection")
	}
	eventually(t, "closed", func() bool { return b.Stats().TCPOpen == 0 })
}

// A crowded request (handshakes piling up) costs no local connection
// before its handshake completes.
func TestCrowdedAcceptsBeforeDialling(t *testing.T) {
	port, accepted := tcpService(t)
	b := NewBridge(&memNet{}, BridgeConfig{TargetHost: "127.0.0.1", TCP: true})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: port}})
	r := newReq(5000)
	r.crowded = true
	r.accepted = make(chan net.Conn) // unbuffered: Accept waits for us
	go b.HandleTCP(r)
	time.Sleep(50 * time.Millisecond) // give a wrong dial-first time to show
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the service saw %d connections before the handshake", n)
	}
	c := <-r.accepted
	defer c.Close()
	if !alive(c) {
		t.Fatal("not bridged after the handshake")
	}
}

// Close does not wait for remote peers to hang up.
func TestCloseEndsOpenConnections(t *testing.T) {
	port, _ := tcpService(t)
	b := NewBridge(&memNet{}, BridgeConfig{TargetHost: "127.0.0.1", TCP: true})
	b.SetRoutes([]Route{{Listen: 5000, Target: port}})
	c := connect(t, b, newReq(5000))
	eventually(t, "open", func() bool { return b.Stats().TCPOpen == 1 })
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close hung while a peer held a connection")
	}
	if alive(c) {
		t.Error("connection still bridged after Close")
	}
}

// The local service restarts: the peer's flow must carry on to the new
// instance on the same port.
func TestUDPFlowSurvivesServiceRestart(t *testing.T) {
	svc, port := udpService(t)
	m := &memNet{}
	b := NewBridge(m, BridgeConfig{TargetHost: "127.0.0.1", UDP: true})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: port}})
	peer, err := net.Dial("udp", m.addr(5000))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	roundTrip(t, peer, "before")
	svc.Close()
	// While it is down, datagrams are refused (ICMP) and lost.
	peer.Write([]byte("while down"))
	peer.Write([]byte("while down"))
	again, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		t.Skipf("could not take the port back: %v", err)
	}
	defer again.Close()
	go func() {
		buf := make([]byte, 100)
		for {
			n, from, err := again.ReadFromUDP(buf)
			if err != nil {
				return
			}
			again.WriteToUDP(buf[:n], from)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 100)
	for {
		peer.Write([]byte("after"))
		peer.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := peer.Read(buf); err == nil && string(buf[:n]) == "after" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("peer cut off after the service restarted")
		}
	}
}

func TestUDPFlowsPerSourceBound(t *testing.T) {
	_, port := udpService(t)
	m := &memNet{}
	b := NewBridge(m, BridgeConfig{TargetHost: "127.0.0.1", UDP: true, MaxUDPFlowsPerSource: 3})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: port}})
	for range 10 { // ten ports of one address (loopback)
		c, err := net.Dial("udp", m.addr(5000))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, "x")
	}
	if n := b.Stats().UDPFlows; n != 3 {
		t.Errorf("flows from one address: %d, bound 3", n)
	}
}

// Junk from many new sources is taken in no faster than the new-flow rate.
func TestUDPNewFlowRate(t *testing.T) {
	_, port := udpService(t)
	m := &memNet{}
	b := NewBridge(m, BridgeConfig{TargetHost: "127.0.0.1", UDP: true, NewUDPFlowsPerSecond: 2})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: port}})
	for range 6 {
		c, err := net.Dial("udp", m.addr(5000))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("junk"))
	}
	eventually(t, "six datagrams handled", func() bool { s := b.Stats(); return s.UDPFlows+s.UDPRefused == 6 })
	if s := b.Stats(); s.UDPFlows > 3 {
		t.Errorf("%d flows opened at once, rate 2/s", s.UDPFlows)
	}
}

func TestLoopbackTrustWarning(t *testing.T) {
	if w := LoopbackTrustWarning("127.0.0.1", 8080); !strings.Contains(w, "qBittorrent") {
		t.Errorf("qBittorrent's Web UI: %q", w)
	}
	if w := LoopbackTrustWarning("localhost", 22); w == "" {
		t.Error("SSH on localhost: no warning")
	}
	if w := LoopbackTrustWarning("127.0.0.1", 51413); w != "" {
		t.Errorf("a torrent client's peer port: %q", w)
	}
	if w := LoopbackTrustWarning("192.168.1.5", 8080); w != "" {
		t.Errorf("a LAN host sees the bridge's LAN address, not loopback: %q", w)
	}
}

// A gateway that forwards TCP and UDP on different ports: each route
// serves its own protocol only.
func TestRoutesPerProtocol(t *testing.T) {
	tcpPort, _ := tcpService(t)
	_, udpPort := udpService(t)
	m := &memNet{}
	b := NewBridge(m, BridgeConfig{TargetHost: "127.0.0.1", TCP: true, UDP: true})
	defer b.Close()
	b.SetRoutes([]Route{{Listen: 5000, Target: tcpPort, Proto: "tcp"}, {Listen: 6000, Target: udpPort, Proto: "udp"}})
	m.mu.Lock()
	_, udpOn5000 := m.pcs[5000]
	_, udpOn6000 := m.pcs[6000]
	m.mu.Unlock()
	if udpOn5000 || !udpOn6000 {
		t.Errorf("UDP listeners: on 5000 %v (want none), on 6000 %v", udpOn5000, udpOn6000)
	}
	connect(t, b, newReq(5000))
	r := newReq(6000)
	go b.HandleTCP(r)
	select {
	case <-r.rejected:
	case <-r.accepted:
		t.Error("TCP accepted on the UDP-only port")
	case <-time.After(2 * time.Second):
		t.Error("no answer")
	}
}
