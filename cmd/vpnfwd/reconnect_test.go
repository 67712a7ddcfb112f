package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/internal/testnet"
	"github.com/vpnfwd/vpnfwd/publish"
	"github.com/vpnfwd/vpnfwd/wg"
)

// lossyRelay carries WireGuard UDP between vpnfwd and the server and can
// drop everything (the server becomes unreachable).
type lossyRelay struct {
	pc   *net.UDPConn
	drop atomic.Bool
}

func newLossyRelay(t *testing.T, server netip.AddrPort) *lossyRelay {
	pc, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	up, _ := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	t.Cleanup(func() { pc.Close(); up.Close() })
	r := &lossyRelay{pc: pc}
	var client atomic.Pointer[net.UDPAddr]
	go func() {
		b := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFromUDP(b)
			if err != nil {
				return
			}
			client.Store(from)
			if !r.drop.Load() {
				up.Write(b[:n])
			}
		}
	}()
	go func() {
		b := make([]byte, 2048)
		for {
			n, err := up.Read(b)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil && !r.drop.Load() {
				pc.WriteToUDP(b[:n], c)
			}
		}
	}()
	return r
}

// recorder is a publish consumer that remembers what it heard.
type recorder struct {
	mu     sync.Mutex
	events []publish.Event
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Publish(_ context.Context, ev publish.Event) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return nil
}
func (r *recorder) reasons() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, e := range r.events {
		s = append(s, e.Reason)
	}
	return strings.Join(s, ",")
}

// A stalled tunnel shows as down in status and events, comes back by
// itself, and consumers re-apply the same port ("reconnect").
func TestStallDownRecoverReapply(t *testing.T) {
	srv, err := testnet.Start(testnet.Options{NATPMP: "generic", Lifetime: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	w, _ := srv.NewClient()
	relay := newLossyRelay(t, srv.Endpoint)
	w.Peers[0].Endpoint = config.Endpoint(relay.pc.LocalAddr().String())
	cfg := config.Defaults()
	cfg.WireGuard = w
	cfg.Provider.Name = "natpmp"
	cfg.Proxy = config.Proxy{}
	cfg.API.Listen = ""
	d, err := startDaemon(context.Background(), &cfg, daemonOptions{Log: slog.New(slog.DiscardHandler),
		Watch: wg.WatchOptions{Interval: 20 * time.Millisecond, StallAfter: 700 * time.Millisecond, ResolveEvery: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	d.disp = publish.NewDispatcher(slog.New(slog.DiscardHandler), nil, rec)
	events := d.broker.SubscribeForTest()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	defer func() { cancel(); <-done }()

	waitState := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case ev := <-events:
				if ev.Type == "state" && strings.Contains(ev.JSON(), `"`+want+`"`) {
					if got := d.Status().State; got != want {
						t.Errorf("event says %s, status says %s", want, got)
					}
					return
				}
			case <-deadline:
				t.Fatalf("no %q state event within %s (status %s)", want, within, d.Status().State)
			}
		}
	}
	waitState("up", 5*time.Second)
	relay.drop.Store(true)
	waitState("down", 5*time.Second)
	relay.drop.Store(false)
	waitState("up", 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(rec.reasons(), "reconnect") {
		if time.Now().After(deadline) {
			t.Fatalf("consumers heard %q, want a reconnect after the tunnel came back", rec.reasons())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(rec.reasons(), "port") {
		t.Errorf("first event %q", rec.reasons())
	}
}
