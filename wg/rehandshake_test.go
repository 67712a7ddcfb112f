package wg_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/tunnel"
	"github.com/vpnfwd/vpnfwd/wg"
)

// relay forwards UDP between a client and the server, and can drop all.
type relay struct {
	pc   *net.UDPConn
	drop atomic.Bool
}

func newRelay(t *testing.T, bind string, server netip.AddrPort) *relay {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(bind)))
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{pc: pc}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); up.Close() })
	var client atomic.Pointer[net.UDPAddr]
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			if !r.drop.Load() {
				up.Write(buf[:n])
			}
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil && !r.drop.Load() {
				pc.WriteToUDP(buf[:n], c)
			}
		}
	}()
	return r
}

func (r *relay) addr() netip.AddrPort { return r.pc.LocalAddr().(*net.UDPAddr).AddrPort() }

// handshakeAfter waits for a handshake newer than after.
func handshakeAfter(t *testing.T, dev *wg.Device, after time.Time, within time.Duration) tunnel.Stats {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := dev.Stats()
		if err == nil && st.LastHandshake.After(after) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new handshake within %s (endpoint %s)", within, dev.Endpoint())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Rehandshake starts a fresh handshake with the next packet, at once,
// instead of waiting for wireguard-go's own timers (15 s and more).
func TestRehandshakeIsImmediate(t *testing.T) {
	dev, st := clientDevice(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go keepSending(ctx, st)
	first := handshakeAfter(t, dev, time.Time{}, 5*time.Second)
	// A WireGuard server ignores a peer's initiations that come within
	// 20 ms of the last one (HandshakeInitationRate): the session never
	// forces handshakes that close together.
	time.Sleep(50 * time.Millisecond)
	if err := dev.Rehandshake(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	handshakeAfter(t, dev, first.LastHandshake, 3*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("new handshake took %s", took)
	}
}

func TestRehandshakeFollowsAMovedEndpoint(t *testing.T) {
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg, _ := srv.NewClient()
	// The server "moves": the name first resolves to a relay that drops
	// everything, then to one on the same port that forwards.
	dead := newRelay(t, "127.0.0.3:0", srv.Endpoint)
	dead.drop.Store(true)
	port := dead.addr().Port()
	live := newRelay(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.4"), port).String(), srv.Endpoint)
	cfg.Peers[0].Endpoint = tunnel.Endpoint(net.JoinHostPort("vpn.test", itoa(port)))
	var addr atomic.Value
	addr.Store(dead.addr().Addr())
	resolve := func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host != "vpn.test" {
			t.Errorf("resolved %q", host)
		}
		return []netip.Addr{addr.Load().(netip.Addr)}, nil
	}
	st, _ := netstack.New(netstack.Config{Addresses: cfg.Addresses(), DNS: cfg.DNSServers()})
	dev, err := wg.New(context.Background(), st.TUN(), cfg, wg.Options{Resolve: resolve})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if got := dev.Endpoint(); got != dead.addr() {
		t.Fatalf("endpoint %s", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go keepSending(ctx, st)
	// The session forces a new handshake when the tunnel is dead: that is
	// when the name is looked up again.
	addr.Store(live.addr().Addr())
	if err := dev.Rehandshake(ctx); err != nil {
		t.Fatal(err)
	}
	handshakeAfter(t, dev, time.Time{}, 5*time.Second)
	if dev.Endpoint() != live.addr() {
		t.Errorf("up via %s, want %s", dev.Endpoint(), live.addr())
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// keepSending sends a datagram through the tunnel every 30 ms until ctx
// ends, as NAT-PMP renewals keep traffic going.
func keepSending(ctx context.Context, st *netstack.Stack) {
	c, err := st.DialContext(ctx, "udp", "198.51.100.1:7")
	if err != nil {
		return
	}
	defer c.Close()
	t := time.NewTicker(30 * time.Millisecond)
	defer t.Stop()
	for {
		c.Write([]byte("ping"))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// clientDevice is a client device on a netstack, connected to an
// in-process server; both are closed at the end of the test.
func clientDevice(t *testing.T) (*wg.Device, *netstack.Stack) {
	t.Helper()
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, _ := srv.NewClient()
	st, _ := netstack.New(netstack.Config{Addresses: cfg.Addresses(), DNS: cfg.DNSServers()})
	dev, err := wg.New(context.Background(), st.TUN(), cfg, wg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev, st
}
