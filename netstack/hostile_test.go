package netstack

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// rawTCP builds an IPv4 TCP segment as a remote peer on the far side of
// the tunnel would send it.
func rawTCP(src, dst netip.AddrPort, seq, ack uint32, flags header.TCPFlags) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.Addr().As4()), DstAddr: tcpip.AddrFrom4(dst.Addr().As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	t := header.TCP(b[header.IPv4MinimumSize:])
	t.Encode(&header.TCPFields{
		SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: seq, AckNum: ack,
		DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 65535,
	})
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), header.TCPMinimumSize)
	t.SetChecksum(^checksum.Checksum(t, xsum))
	return b
}

// readSegment reads packets the stack sends into the tunnel until one is
// a TCP segment to peer with the given flags, or the deadline passes.
func readSegment(t *testing.T, s *Stack, peer netip.AddrPort, want header.TCPFlags) header.TCP {
	t.Helper()
	got := make(chan header.TCP, 1)
	go func() {
		bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
		for {
			n, err := s.TUN().Read(bufs, sizes, 0)
			if err != nil {
				close(got)
				return
			}
			if n == 0 {
				continue
			}
			ip := header.IPv4(bufs[0][:sizes[0]])
			if !ip.IsValid(sizes[0]) || ip.TransportProtocol() != header.TCPProtocolNumber {
				continue
			}
			tcp := header.TCP(ip.Payload())
			if tcp.DestinationPort() == peer.Port() && tcp.Flags().Contains(want) {
				got <- append(header.TCP(nil), tcp...)
				return
			}
		}
	}()
	select {
	case seg, ok := <-got:
		if !ok {
			t.Fatal("stack closed")
		}
		return seg
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s segment to %s", want, peer)
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func single(t *testing.T, cfg Config) *Stack {
	t.Helper()
	cfg.Addresses = []netip.Prefix{netip.MustParsePrefix("10.9.0.2/32")}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A port scanner's SYN, then a RST after our SYN-ACK, used to panic the
// process: the accept path read the request's addresses after Complete had
// released its segment.
func TestSYNThenRSTDoesNotCrash(t *testing.T) {
	s := single(t, Config{})
	accepted := make(chan error, 4)
	s.SetTCPHandler(func(r *TCPRequest) {
		c, err := r.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	})
	peer := netip.MustParseAddrPort("10.9.0.1:40000")
	us := netip.MustParseAddrPort("10.9.0.2:80")
	const isn = 1000
	s.TUN().Write([][]byte{rawTCP(peer, us, isn, 0, header.TCPFlagSyn)}, 0)
	readSegment(t, s, peer, header.TCPFlagSyn|header.TCPFlagAck)
	s.TUN().Write([][]byte{rawTCP(peer, us, isn+1, 0, header.TCPFlagRst)}, 0)
	select {
	case err := <-accepted:
		if err == nil {
			t.Fatal("a reset handshake was accepted")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("accept did not return after the RST")
	}
	waitFor(t, "no pending handshake", func() bool { return s.Stats().PendingHandshakes == 0 })
	if st := s.Stats(); st.FailedHandshakes != 1 {
		t.Errorf("failed handshakes %d, want 1", st.FailedHandshakes)
	}
}

// A panicking handler costs one connection (refused), not the process.
func TestHandlerPanicIsContained(t *testing.T) {
	s := single(t, Config{})
	s.SetTCPHandler(func(r *TCPRequest) { panic("bad connection") })
	peer := netip.MustParseAddrPort("10.9.0.1:40001")
	s.TUN().Write([][]byte{rawTCP(peer, netip.MustParseAddrPort("10.9.0.2:80"), 5, 0, header.TCPFlagSyn)}, 0)
	readSegment(t, s, peer, header.TCPFlagRst)
	waitFor(t, "no pending handshake", func() bool { return s.Stats().PendingHandshakes == 0 })
}

// A SYN flood holds at most the configured number of half-open
// handshakes, per source and overall; the rest are ignored.
func TestSYNFloodIsBounded(t *testing.T) {
	s := single(t, Config{MaxPendingHandshakes: 40, MaxPendingPerSource: 8})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.SetTCPHandler(func(r *TCPRequest) {
		<-release // hold every admitted handshake open
		r.Drop()
	})
	us := netip.MustParseAddrPort("10.9.0.2:80")
	sent := 0
	// One SYN at a time, each decided (held or ignored) before the next,
	// so that gVisor's own in-flight cap never decides for us.
	syn := func(src netip.AddrPort) {
		t.Helper()
		s.TUN().Write([][]byte{rawTCP(src, us, 1, 0, header.TCPFlagSyn)}, 0)
		sent++
		waitFor(t, "the SYN decided", func() bool {
			st := s.Stats()
			return uint64(st.PendingHandshakes)+st.DroppedSYN == uint64(sent)
		})
	}
	for i := range 30 { // one source, many ports
		syn(netip.AddrPortFrom(netip.MustParseAddr("10.9.0.1"), uint16(1000+i)))
	}
	if st := s.Stats(); st.PendingHandshakes != 8 || st.DroppedSYN != 22 {
		t.Fatalf("one source: %d pending, %d dropped; want 8 and 22", st.PendingHandshakes, st.DroppedSYN)
	}
	for i := range 50 { // many sources
		syn(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, 0, byte(1 + i)}), 2000))
	}
	if st := s.Stats(); st.PendingHandshakes != 40 || st.DroppedSYN != 22+18 {
		t.Fatalf("many sources: %d pending, %d dropped; want 40 and 40", st.PendingHandshakes, st.DroppedSYN)
	}
}

// A spoofed flood fills the pending table with handshakes that never
// complete; a real peer still gets in at once: the oldest half-open
// handshake is aborted to make room.
func TestOldestHalfOpenMakesRoom(t *testing.T) {
	s := single(t, Config{MaxPendingHandshakes: 4})
	accepted := make(chan netip.AddrPort, 8)
	s.SetTCPHandler(func(r *TCPRequest) {
		if c, err := r.Accept(); err == nil {
			accepted <- r.RemoteAddr()
			c.Close()
		}
	})
	us := netip.MustParseAddrPort("10.9.0.2:80")
	for i := range 4 {
		spoofed := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, 0, byte(1 + i)}), 2000)
		s.TUN().Write([][]byte{rawTCP(spoofed, us, 1, 0, header.TCPFlagSyn)}, 0)
	}
	waitFor(t, "a full table", func() bool { return s.Stats().PendingHandshakes == 4 })
	peer := netip.MustParseAddrPort("10.9.0.1:40000")
	s.TUN().Write([][]byte{rawTCP(peer, us, 100, 0, header.TCPFlagSyn)}, 0)
	synack := readSegment(t, s, peer, header.TCPFlagSyn|header.TCPFlagAck)
	s.TUN().Write([][]byte{rawTCP(peer, us, 101, synack.SequenceNumber()+1, header.TCPFlagAck)}, 0)
	select {
	case got := <-accepted:
		if got != peer {
			t.Fatalf("accepted %s", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the real peer was not accepted")
	}
	if st := s.Stats(); st.EvictedHandshakes != 1 || st.DroppedSYN != 0 {
		t.Errorf("stats %+v, want one eviction and no drop", st)
	}
	waitFor(t, "the table back within its bound", func() bool { return s.Stats().PendingHandshakes == 3 })
}

// A SYN never ACKed holds its place only for the handshake timeout (gVisor
// alone retries the SYN-ACK for 127 s), and closing the stack ends
// handshakes in progress at once.
func TestHalfOpenTimesOutAndCloseAborts(t *testing.T) {
	s := single(t, Config{HandshakeTimeout: 200 * time.Millisecond})
	errs := make(chan error, 4)
	s.SetTCPHandler(func(r *TCPRequest) {
		_, err := r.Accept()
		errs <- err
	})
	us := netip.MustParseAddrPort("10.9.0.2:80")
	s.TUN().Write([][]byte{rawTCP(netip.MustParseAddrPort("10.8.0.1:1"), us, 1, 0, header.TCPFlagSyn)}, 0)
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("accepted a handshake nobody completed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("half-open handshake outlived its timeout")
	}
	waitFor(t, "no pending handshake", func() bool { return s.Stats().PendingHandshakes == 0 })

	long := single(t, Config{})
	long.SetTCPHandler(func(r *TCPRequest) {
		_, err := r.Accept()
		errs <- err
	})
	long.TUN().Write([][]byte{rawTCP(netip.MustParseAddrPort("10.8.0.1:2"), us, 1, 0, header.TCPFlagSyn)}, 0)
	waitFor(t, "a pending handshake", func() bool { return long.Stats().PendingHandshakes == 1 })
	long.Close()
	select {
	case <-errs:
	case <-time.After(2 * time.Second):
		t.Fatal("Close left a handshake waiting")
	}
}

// FuzzInbound feeds arbitrary packets into the stack from the tunnel side,
// with a handler that accepts everything, as the bridge would.
func FuzzInbound(f *testing.F) {
	peer := netip.MustParseAddrPort("10.9.0.1:40000")
	us := netip.MustParseAddrPort("10.9.0.2:80")
	f.Add(rawTCP(peer, us, 1, 0, header.TCPFlagSyn))
	f.Add(rawTCP(peer, us, 2, 0, header.TCPFlagRst))
	f.Add(rawTCP(peer, us, 2, 9, header.TCPFlagAck|header.TCPFlagFin))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 17, 64})
	f.Add([]byte{0x45})
	s, err := New(Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.2/32"), netip.MustParsePrefix("fd00::2/128")}})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	s.SetTCPHandler(func(r *TCPRequest) {
		if c, err := r.Accept(); err == nil {
			c.Close()
		}
	})
	go func() { // drain what the stack answers
		bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
		for {
			if _, err := s.TUN().Read(bufs, sizes, 0); err != nil {
				return
			}
		}
	}()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s.TUN().Write([][]byte{pkt}, 0)
		s.TUN().Write([][]byte{append([]byte{0x45}, pkt...), append([]byte{0x60}, pkt...)}, 0)
	})
}

// After a handshake from a source fails (a scanner's RST), that source's
// next SYNs are handled handshake-first: Crowded says so.
func TestFailedHandshakeMakesSourceSuspect(t *testing.T) {
	s := single(t, Config{})
	crowded := make(chan bool, 4)
	s.SetTCPHandler(func(r *TCPRequest) {
		crowded <- r.Crowded()
		r.Accept()
	})
	us := netip.MustParseAddrPort("10.9.0.2:80")
	scanner := netip.MustParseAddrPort("10.9.0.1:40000")
	s.TUN().Write([][]byte{rawTCP(scanner, us, 1000, 0, header.TCPFlagSyn)}, 0)
	if <-crowded {
		t.Fatal("a first SYN is not crowded")
	}
	readSegment(t, s, scanner, header.TCPFlagSyn|header.TCPFlagAck)
	s.TUN().Write([][]byte{rawTCP(scanner, us, 1001, 0, header.TCPFlagRst)}, 0)
	waitFor(t, "the failed handshake", func() bool { return s.Stats().FailedHandshakes == 1 })
	next := netip.MustParseAddrPort("10.9.0.1:40001")
	s.TUN().Write([][]byte{rawTCP(next, us, 5000, 0, header.TCPFlagSyn)}, 0)
	if !<-crowded {
		t.Error("the scanner's next SYN is not treated as crowded")
	}
}
