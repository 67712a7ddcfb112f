package forward

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// closedSoon reports whether the far end closes c within d.
func closedSoon(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// countingTunnel is blockTunnel counting its dials in progress.
type countingTunnel struct {
	blockTunnel
	now, most *atomic.Int64
}

func (c countingTunnel) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	return c.blockTunnel.DialContext(ctx, network, addr)
}

// A local forward whose destination never answers holds no more than its
// caps, counted from accept: at most MaxConns connections (the rest are
// closed as they arrive), of which at most MaxPendingDials dial at once
// while the others wait their turn. Before, every connection was
// accepted and dialled at once, each holding a descriptor.
func TestLocalForwardCapsFromAccept(t *testing.T) {
	tests := []struct {
		name              string
		maxConns, pending int
		conns             int
		wantHeld          int
		wantDialling      int64
	}{
		{"dials bounded, the rest wait", 64, 4, 40, 40, 4},
		{"connections bounded from accept", 6, 64, 40, 6, 6},
		{"under both", 64, 64, 10, 10, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun := countingTunnel{blockTunnel{release: make(chan struct{})}, new(atomic.Int64), new(atomic.Int64)}
			defer close(tun.release)
			l := startLocal(t, "127.0.0.1:0=blackhole.test:9", tun,
				LocalConfig{MaxConns: tt.maxConns, MaxPendingDials: tt.pending, DialTimeout: time.Minute})
			var conns []net.Conn
			for range tt.conns {
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns = append(conns, c)
			}
			eventually(t, "every connection accepted or refused", func() bool {
				return l.l.Open()+int(l.Stats().Refused) == tt.conns
			})
			eventually(t, "the dials started", func() bool { return tun.now.Load() == tt.wantDialling })
			held := 0
			for _, c := range conns {
				if !closedSoon(c, 20*time.Millisecond) {
					held++
				}
			}
			if held != tt.wantHeld || l.l.Open() != tt.wantHeld {
				t.Errorf("held %d (listener counts %d), want %d", held, l.l.Open(), tt.wantHeld)
			}
			if most := tun.most.Load(); most != tt.wantDialling {
				t.Errorf("%d dials at once, want %d", most, tt.wantDialling)
			}
			if st := l.Stats(); st.Refused != int64(tt.conns-tt.wantHeld) || st.Failed != 0 {
				t.Errorf("stats %+v, want %d refused", st, tt.conns-tt.wantHeld)
			}
		})
	}
}

// A connection has DialTimeout from accept, its wait for a dial
// included; then its place is free again.
func TestLocalForwardDialTimeoutFreesPlace(t *testing.T) {
	block := blockTunnel{release: make(chan struct{})}
	defer close(block.release)
	l := startLocal(t, "127.0.0.1:0=blackhole.test:9", block, LocalConfig{MaxPendingDials: 1, DialTimeout: 200 * time.Millisecond})
	var conns []net.Conn
	for range 3 { // one dials, two wait
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i, c := range conns {
		if !closedSoon(c, 5*time.Second) {
			t.Fatalf("connection %d: not closed after its dial timed out", i)
		}
	}
	eventually(t, "the places freed", func() bool { return l.l.Open() == 0 && len(l.dials) == 0 })
	if st := l.Stats(); st.Failed+st.Refused != 3 || st.Failed < 1 {
		t.Errorf("stats %+v, want 3 failed or refused, at least one dial failed", st)
	}
}

// A local forward goes through the same guard as the proxies: a TCP
// forward to a reserved endpoint closes its clients without dialling, a
// UDP forward to the NAT-PMP gateway's port drops their datagrams; both
// reach anything else.
func TestLocalForwardGuard(t *testing.T) {
	reservedTCP := netip.MustParseAddrPort(echoTCP(t))
	openTCP := echoTCP(t)
	gateway, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gateway.Close()
	got := make(chan string, 8)
	go func() {
		buf := make([]byte, 100)
		for {
			n, from, err := gateway.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
			gateway.WriteTo(buf[:n], from)
		}
	}()
	reservedUDP := netip.MustParseAddrPort(gateway.LocalAddr().String())
	g := NewGuard(func(network string, dst netip.AddrPort) bool {
		return (network == "udp" && dst == reservedUDP) || (network == "tcp" && dst == reservedTCP)
	}, slog.New(slog.DiscardHandler))
	serve := func(spec string) *Local {
		s, err := ParseLocalForward(spec)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ListenLocal(s, LocalConfig{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { l.Serve(loopTunnel{}, g); close(done) }()
		t.Cleanup(func() { l.Close(); <-done })
		return l
	}
	// TCP: the reserved endpoint by address and by a name that resolves
	// to it (loopTunnel resolves every name to 127.0.0.1).
	for _, to := range []string{reservedTCP.String(), "gateway.test:" + strconv.Itoa(int(reservedTCP.Port()))} {
		l := serve("127.0.0.1:0=" + to)
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		if !closedSoon(c, 5*time.Second) {
			t.Errorf("to %s: the client was not closed", to)
		}
		c.Close()
		eventually(t, "refusal counted", func() bool { return l.Stats().Refused == 1 })
		if st := l.Stats(); st.Total != 0 || st.Failed != 0 {
			t.Errorf("to %s: stats %+v", to, st)
		}
	}
	ok := serve("127.0.0.1:0=" + openTCP)
	c, err := net.Dial("tcp", ok.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hi"))
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		t.Errorf("a forward elsewhere: %v", err)
	}

	// UDP: NAT-PMP's "delete all mappings" (RFC 6886 3.4) never reaches
	// the gateway.
	udp := serve("127.0.0.1:0=" + reservedUDP.String() + "/udp")
	uc, err := net.Dial("udp", udp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for range 3 {
		uc.Write([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	}
	eventually(t, "refusals counted", func() bool { return udp.Stats().Refused == 3 })
	select {
	case m := <-got:
		t.Fatalf("the gateway got %q through a local forward", m)
	case <-time.After(100 * time.Millisecond):
	}
	if st := udp.Stats(); st.Open != 0 || st.BytesOut != 0 {
		t.Errorf("UDP stats %+v", st)
	}
}

// A SOCKS5 client that sends its greeting, login or request too slowly
// is dropped at HandshakeTimeout, however it trickles.
func TestSOCKS5HandshakeTimeout(t *testing.T) {
	addr := serveSOCKS(t, &SOCKS5{Tunnel: loopTunnel{}, Auth: Credentials{"u", "p"}, HandshakeTimeout: 300 * time.Millisecond})
	tests := []struct {
		name  string
		sends [][]byte // one part every 100 ms
	}{
		{"nothing", nil},
		{"the version byte only", [][]byte{{5}}},
		{"a greeting byte by byte", [][]byte{{5}, {1}, {2}, {1}, {1}, {'u'}, {1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			for _, b := range tt.sends {
				c.Write(b)
				time.Sleep(100 * time.Millisecond) // the trickle itself
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.Copy(io.Discard, c) // the greeting's answer, then EOF (or a reset)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("not dropped in 5 s")
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("dropped after %s, want about 300 ms", took)
			}
		})
	}
}
