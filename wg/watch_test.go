package wg_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/internal/testnet"
	"github.com/vpnfwd/vpnfwd/netstack"
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

func TestStallIsDownAndRecovers(t *testing.T) {
	srv, err := testnet.Start(testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg, _ := srv.NewClient()
	rl := newRelay(t, "127.0.0.1:0", srv.Endpoint)
	cfg.Peers[0].Endpoint = config.Endpoint(rl.addr().String())
	st, _ := netstack.New(netstack.Config{Addresses: cfg.Addresses(), DNS: cfg.DNSServers()})
	dev, err := wg.New(context.Background(), st.TUN(), cfg, wg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	states := make(chan wg.State, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go dev.Watch(ctx, wg.WatchOptions{Interval: 20 * time.Millisecond, StallAfter: 400 * time.Millisecond, ResolveEvery: 50 * time.Millisecond},
		func(s wg.State, _ wg.Stats) { states <- s })
	go keepSending(ctx, st)
	expect := func(want wg.State, within time.Duration) {
		t.Helper()
		select {
		case s := <-states:
			if s != want {
				t.Fatalf("state %s, want %s", s, want)
			}
		case <-time.After(within):
			t.Fatalf("no %s state within %s", want, within)
		}
	}
	expect(wg.StateUp, 3*time.Second)
	rl.drop.Store(true)
	expect(wg.StateDown, 3*time.Second)
	// While down, the same traffic keeps trying; the server comes back.
	rl.drop.Store(false)
	expect(wg.StateUp, 3*time.Second)
	if dev.Endpoint() != rl.addr() {
		t.Errorf("endpoint %s", dev.Endpoint())
	}
}

func TestReresolveMovesEndpoint(t *testing.T) {
	srv, err := testnet.Start(testnet.Options{})
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
	cfg.Peers[0].Endpoint = config.Endpoint(net.JoinHostPort("vpn.test", itoa(port)))
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
	states := make(chan wg.State, 16)
	go dev.Watch(ctx, wg.WatchOptions{Interval: 20 * time.Millisecond, StallAfter: 200 * time.Millisecond, ResolveEvery: 50 * time.Millisecond},
		func(s wg.State, _ wg.Stats) { states <- s })
	go keepSending(ctx, st)
	time.Sleep(300 * time.Millisecond)
	addr.Store(live.addr().Addr())
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-states:
			if s == wg.StateUp {
				if dev.Endpoint() != live.addr() {
					t.Errorf("up via %s, want %s", dev.Endpoint(), live.addr())
				}
				return
			}
		case <-deadline:
			t.Fatalf("tunnel never came up at the new address; endpoint %s", dev.Endpoint())
		}
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
