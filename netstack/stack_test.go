package netstack

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// link pumps packets between two stacks' TUN sides, as a tunnel would.
func link(t *testing.T, a, b *Stack) {
	pump := func(from, to *Stack) {
		bufs := make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes := make([]int, batch)
		for {
			n, err := from.TUN().Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			out := make([][]byte, n)
			for i := range out {
				out[i] = bufs[i][:sizes[i]]
			}
			to.TUN().Write(out, 0)
		}
	}
	go pump(a, b)
	go pump(b, a)
}

func pair(t *testing.T) (*Stack, *Stack) {
	a, err := New(Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.2/32")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	link(t, a, b)
	return a, b
}

func TestTCPHandlerAcceptsOrRefuses(t *testing.T) {
	a, b := pair(t)
	b.SetTCPHandler(func(r *TCPRequest) {
		if r.LocalAddr().Port() != 80 || r.RemoteAddr().Addr() != netip.MustParseAddr("10.9.0.1") {
			r.Reject()
			return
		}
		c, err := r.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "accepted")
		c.Close()
		r.Reject() // a second answer is ignored
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	if string(got) != "accepted" {
		t.Errorf("got %q", got)
	}
	if _, err := a.DialContext(ctx, "tcp", "10.9.0.2:81"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("rejected connection: %v (want connection refused, from a RST)", err)
	}
}

func TestUDPAndNoDNS(t *testing.T) {
	a, b := pair(t)
	pc, err := b.ListenUDP(netip.MustParseAddrPort("10.9.0.2:53"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err == nil {
			pc.WriteTo(buf[:n], from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := a.DialContext(ctx, "udp", "10.9.0.2:53")
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("ping"))
	u.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 10)
	if n, err := u.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	// No DNS server configured: a name cannot be resolved, and nothing
	// falls back to the host's resolver.
	if _, err := a.DialContext(ctx, "tcp", "example.com:80"); err == nil || !strings.Contains(err.Error(), "no DNS server") {
		t.Errorf("dial by name without DNS: %v", err)
	}
}

func TestClosedStack(t *testing.T) {
	a, _ := pair(t)
	a.Close()
	a.Close() // safe twice
	if _, err := a.DialContext(context.Background(), "tcp", "10.9.0.2:80"); !errors.Is(err, errClosed) {
		t.Errorf("dial after close: %v", err)
	}
}

// The stack's TCP is CUBIC with RACK-TLP off (RACK's tail loss probes
// resent what had arrived: tune); accepted connections on short paths
// run Reno, on long ones CUBIC (congestionControlFor: gVisor's CUBIC left
// slow start at half a short path's window; docs/figures.md, "One
// upload: the window, then the machine").
func TestTCPTuning(t *testing.T) {
	a, b := pair(t)
	var cc tcpip.CongestionControlOption
	if err := a.stack.TransportProtocolOption(tcp.ProtocolNumber, &cc); err != nil || cc != "cubic" {
		t.Errorf("congestion control %q (%v), want cubic", cc, err)
	}
	var rec tcpip.TCPRecovery
	if err := a.stack.TransportProtocolOption(tcp.ProtocolNumber, &rec); err != nil || rec != 0 {
		t.Errorf("TCP recovery %v (%v), want 0 (RACK off)", rec, err)
	}
	for rtt, want := range map[time.Duration]tcpip.CongestionControlOption{ // shortRTT 4 ms
		0: "reno", time.Millisecond: "reno", 3 * time.Millisecond: "reno",
		4 * time.Millisecond: "cubic", 30 * time.Millisecond: "cubic", time.Second: "cubic",
	} {
		if got := congestionControlFor(rtt); got != want {
			t.Errorf("a %s handshake: %s, want %s", rtt, got, want)
		}
	}
	// Accept sets it by the handshake's time: every handshake is short
	// against an hour (this busy machine's are not all under 4 ms).
	defer func(d time.Duration) { shortRTT = d }(shortRTT)
	shortRTT = time.Hour
	got := make(chan tcpip.CongestionControlOption, 1)
	b.SetTCPHandler(func(r *TCPRequest) {
		c, err := r.Accept()
		if err != nil {
			got <- ""
			return
		}
		defer c.Close()
		var cc tcpip.CongestionControlOption
		c.(*sizedConn).ep.GetSockOpt(&cc)
		got <- cc
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case cc := <-got:
		if cc != "reno" {
			t.Errorf("accepted connection's congestion control %q, want reno", cc)
		}
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
}
