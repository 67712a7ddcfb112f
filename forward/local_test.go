package forward

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseLocalForward(t *testing.T) {
	good := map[string]LocalSpec{
		"5432=db.example:5432":           {Bind: netip.MustParseAddrPort("127.0.0.1:5432"), Host: "db.example", Port: 5432},
		"0.0.0.0:8080=10.0.0.5:80/tcp":   {Bind: netip.MustParseAddrPort("0.0.0.0:8080"), Host: "10.0.0.5", Port: 80},
		"5353=1.1.1.1:53/udp":            {Bind: netip.MustParseAddrPort("127.0.0.1:5353"), Host: "1.1.1.1", Port: 53, UDP: true},
		"[::1]:2222=[2001:db8::1]:22":    {Bind: netip.MustParseAddrPort("[::1]:2222"), Host: "2001:db8::1", Port: 22},
		" 127.0.0.2:25565=mc.test:25565": {Bind: netip.MustParseAddrPort("127.0.0.2:25565"), Host: "mc.test", Port: 25565},
	}
	for in, want := range good {
		got, err := ParseLocalForward(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                 "no '='",
		"5432":             "no '='",
		"5432=db":          "not HOST:PORT",
		"70000=db:1":       "not 1-65535",
		"5432=db:0":        "not 1-65535",
		"host:1=db:1":      "not an IP address",
		"1=db:1/sctp":      "neither tcp nor udp",
		"1=:1":             "not HOST:PORT",
		"127.0.0.1:x=db:1": "not 1-65535",
		"1=db:http":        "not 1-65535",
	}
	for in, want := range bad {
		_, err := ParseLocalForward(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "[BIND:]PORT=HOST:PORT") {
			t.Errorf("%q: %v, want an error saying %q and the form", in, err, want)
		}
	}
}

func startLocal(t *testing.T, spec string, tun Tunnel, cfg LocalConfig) *Local {
	t.Helper()
	s, err := ParseLocalForward(spec)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenLocal(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Serve(tun, nil); close(done) }()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return l
}

// A TCP local forward reaches its destination (here through loopTunnel),
// both ways, and counts it. (cmd's TestLocalForwardThroughTheTunnel
// looks a name up through a real tunnel.)
func TestLocalForwardTCP(t *testing.T) {
	_, port, _ := net.SplitHostPort(echoTCP(t))
	l := startLocal(t, "127.0.0.1:0=127.0.0.1:"+port, loopTunnel{}, LocalConfig{})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("%q %v", buf, err)
	}
	// The copy counts bytes after its write returns, which may be after
	// the echo came back: wait for the count, with a deadline.
	deadline := time.Now().Add(5 * time.Second)
	st := l.Stats()
	for (st.BytesOut != 5 || st.BytesIn != 5) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		st = l.Stats()
	}
	if st.Open != 1 || st.Total != 1 || st.BytesOut != 5 || st.BytesIn != 5 || st.Protocol != "tcp" || st.To != "127.0.0.1:"+port {
		t.Errorf("stats %+v", st)
	}
}

// A destination the tunnel cannot reach closes the client's connection
// at once and counts a failure.
func TestLocalForwardDialFails(t *testing.T) {
	l := startLocal(t, "127.0.0.1:0=nowhere.test:1", failTunnel{}, LocalConfig{})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a forward whose tunnel refuses", n)
	}
	if st := l.Stats(); st.Failed != 1 || st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A UDP local forward relays datagrams both ways, one flow per client,
// and only the destination's answers come back.
func TestLocalForwardUDP(t *testing.T) {
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	_, port, _ := net.SplitHostPort(echo.LocalAddr().String())
	l := startLocal(t, "127.0.0.1:0=echo.test:"+port+"/udp", loopTunnel{}, LocalConfig{})
	for i, client := range []string{"a", "b"} {
		c, err := net.Dial("udp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		for j := 0; j < 3; j++ {
			c.Write([]byte(client))
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "re:"+client {
				t.Fatalf("client %s: %q %v", client, buf[:n], err)
			}
		}
		if st := l.Stats(); st.Open != int64(i+1) || st.Total != int64(i+1) {
			t.Errorf("after client %s: %+v", client, st)
		}
	}
}

// A forward listening off loopback serves only the allowed clients.
func TestLocalForwardAllow(t *testing.T) {
	_, port, _ := net.SplitHostPort(echoTCP(t))
	l := startLocal(t, "127.0.0.1:0=echo.test:"+port, loopTunnel{}, LocalConfig{})
	if !l.allowed(netip.MustParseAddr("127.0.0.1")) || l.allowed(netip.MustParseAddr("192.0.2.7")) {
		t.Error("without Allow only loopback may use it")
	}
	l.cfg.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	if !l.allowed(netip.MustParseAddr("::ffff:192.0.2.7")) || l.allowed(netip.MustParseAddr("198.51.100.1")) {
		t.Error("Allow is not applied")
	}
}

// Close ends open connections and Serve returns (startLocal's cleanup
// checks), even with a dial still in progress.
func TestLocalForwardCloseWithDialPending(t *testing.T) {
	block := blockTunnel{release: make(chan struct{})}
	defer close(block.release)
	l := startLocal(t, "127.0.0.1:0=slow.test:1", block, LocalConfig{DialTimeout: time.Minute})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.Close()
}

// blockTunnel's dials wait for their context (or release).
type blockTunnel struct{ release chan struct{} }

func (b blockTunnel) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.release:
		return nil, errNoTunnel
	}
}
func (blockTunnel) ListenUDP(netip.AddrPort) (net.PacketConn, error) { return nil, errNoTunnel }
func (blockTunnel) Resolve(context.Context, string) ([]netip.Addr, error) {
	return nil, errNoTunnel
}
