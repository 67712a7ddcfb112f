package connlimit

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// Over the cap a connection is closed at once; a closed one frees its
// place.
func TestCap(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, Limits{Max: 3, PerAddr: 1}) // loopback: the per-address cap does not apply
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var served []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		served = append(served, <-accepted)
	}
	over, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("a fourth connection was not closed: %v", err)
	}
	served[0].Close()
	again, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Error("a closed connection did not free its place")
	}
	if n := l.Open(); n != 2 {
		t.Errorf("open %d, want 2", n)
	}
	if n := l.Refused(); n != 1 {
		t.Errorf("refused %d, want 1", n)
	}
}

// fakeConn is a connection between two addresses, for the caps'
// arithmetic without sockets.
type fakeConn struct {
	net.Conn
	local, remote net.Addr
}

func (c fakeConn) LocalAddr() net.Addr  { return c.local }
func (c fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c fakeConn) Close() error         { return nil }

func tcpAddr(s string) net.Addr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(s), 1))
}

// Peers off this host together hold at most Max-Reserve, each address at
// most PerAddr; the reserve is this host's: loopback, the listener's own
// address, unix sockets.
func TestReserve(t *testing.T) {
	const self = "192.0.2.1" // the address the listener was reached on
	type step struct {
		from string // remote address; "unix" for a unix socket
		want bool   // admitted
	}
	tests := []struct {
		name  string
		lim   Limits
		steps []step
	}{
		{"remote peers stop at Max-Reserve, loopback takes the rest", Limits{Max: 4, PerAddr: 4, Reserve: 2}, []step{
			{"198.51.100.1", true}, {"198.51.100.2", true}, {"198.51.100.3", false},
			{"127.0.0.1", true}, {"::1", true}, {"127.0.0.1", false},
		}},
		{"this host's own address and unix sockets use the reserve", Limits{Max: 3, PerAddr: 3, Reserve: 2}, []step{
			{"198.51.100.1", true}, {"198.51.100.1", false}, {self, true}, {"unix", true}, {"127.0.0.1", false},
		}},
		{"loopback may fill all of Max, then remote peers wait too", Limits{Max: 2, PerAddr: 2, Reserve: 1}, []step{
			{"127.0.0.1", true}, {"127.0.0.1", true}, {"198.51.100.1", false},
		}},
		{"per address within the remote share", Limits{Max: 10, PerAddr: 2, Reserve: 4}, []step{
			{"198.51.100.1", true}, {"198.51.100.1", true}, {"198.51.100.1", false}, {"::ffff:198.51.100.1", false},
			{"198.51.100.2", true}, {"198.51.100.2", true}, {"198.51.100.3", true}, {"198.51.100.3", true},
			{"198.51.100.4", false}, {"127.0.0.1", true},
		}},
		{"a reserve over Max keeps every remote peer out", Limits{Max: 2, PerAddr: 2, Reserve: 5}, []step{
			{"198.51.100.1", false}, {"127.0.0.1", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(nil, tt.lim)
			for i, s := range tt.steps {
				c := fakeConn{local: &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, remote: &net.UnixAddr{Net: "unix"}}
				if s.from != "unix" {
					c = fakeConn{local: tcpAddr(self), remote: tcpAddr(s.from)}
				}
				a, local := peer(c)
				if got := l.take(a, local); got != s.want {
					t.Fatalf("step %d (%s): admitted %v, want %v", i, s.from, got, s.want)
				}
			}
		})
	}
}

// A closed connection gives its place back to the remote share and its
// address.
func TestReleaseRemote(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	l := New(inner, Limits{Max: 2, PerAddr: 1, Reserve: 1})
	c := &conn{Conn: fakeConn{}, l: l, a: netip.MustParseAddr("198.51.100.1")}
	if !l.take(c.a, false) {
		t.Fatal("first remote connection refused")
	}
	if l.take(netip.MustParseAddr("198.51.100.2"), false) {
		t.Fatal("a second remote connection took the reserve")
	}
	c.Close()
	c.Close() // twice: counted once
	if !l.take(netip.MustParseAddr("198.51.100.1"), false) {
		t.Error("the closed connection did not free its place")
	}
	if n := l.Open(); n != 1 {
		t.Errorf("open %d, want 1", n)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
