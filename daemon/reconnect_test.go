package daemon

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
	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/internal/testkit"
	"github.com/vpnfwd/vpnfwd/publish"
	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/tunnel"
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
	events []session.Event
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Publish(_ context.Context, ev session.Event) error {
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
		s = append(s, string(e.Kind))
	}
	return strings.Join(s, ",")
}

// wait waits until the consumer heard an event with that reason.
func (r *recorder) wait(t *testing.T, reason string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.reasons(), reason) {
		if time.Now().After(deadline) {
			t.Fatalf("consumers heard %q, want %q", r.reasons(), reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stateLog is a session sink that remembers the states in order.
type stateLog struct {
	mu     sync.Mutex
	states []string
	wake   chan struct{}
}

func newStateLog() *stateLog { return &stateLog{wake: make(chan struct{}, 1)} }

func (s *stateLog) sink(ev session.Event) {
	if ev.Kind != session.KindState {
		return
	}
	s.mu.Lock()
	s.states = append(s.states, string(ev.State))
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// wait waits until state has been seen n times in all.
func (s *stateLog) wait(t *testing.T, state string, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		s.mu.Lock()
		seen := strings.Count(strings.Join(s.states, ",")+",", state+",")
		all := strings.Join(s.states, ",")
		s.mu.Unlock()
		if seen >= n {
			return
		}
		select {
		case <-s.wake:
		case <-deadline:
			t.Fatalf("state %q not seen %d times within %s (states %s)", state, n, within, all)
		}
	}
}

// A dead tunnel shows as down in status and events within seconds, is
// made to handshake again until it answers, comes back within a second or
// two of the outage's end, and consumers re-apply the same port
// ("reconnect") — never an older port after a newer one.
func TestStallDownRecoverReapply(t *testing.T) {
	srv, err := demo.Start(demo.Options{NATPMP: "generic", Lifetime: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	w, _ := srv.NewClient()
	relay := newLossyRelay(t, srv.Endpoint)
	w.Peers[0].Endpoint = tunnel.Endpoint(relay.pc.LocalAddr().String())
	cfg := config.Defaults()
	cfg.WireGuard = w
	cfg.WireGuard.Name = "-" // no control socket: /var/run/wireguard is the host's
	d, rec, states := runNATPMP(t, cfg, session.Options{ProbeTimeout: 500 * time.Millisecond})

	states.wait(t, "up", 1, 5*time.Second)
	rec.wait(t, "port")
	relay.drop.Store(true)
	states.wait(t, "down", 1, 5*time.Second)
	if got := d.Status(); got.State != "down" || got.Tunnel.DownSince.IsZero() {
		t.Errorf("status while down: state %s, down since %v", got.State, got.Tunnel.DownSince)
	}
	relay.drop.Store(false)
	back := time.Now()
	states.wait(t, "up", 2, 10*time.Second)
	if took := time.Since(back); took > 3*time.Second {
		t.Errorf("tunnel back %s after the outage ended, want within 3 s", took)
	}
	if st := d.Status(); st.Tunnel.Rehandshakes == 0 || st.Tunnel.Recoveries != 1 {
		t.Errorf("status counts %d forced handshakes, %d recoveries", st.Tunnel.Rehandshakes, st.Tunnel.Recoveries)
	}
	rec.wait(t, "reconnect")
	if !strings.HasPrefix(rec.reasons(), "port") {
		t.Errorf("first event %q", rec.reasons())
	}
}

// runNATPMP runs a daemon with the natpmp provider over cfg's tunnel(s),
// fast checks (so, the session's options with their defaults), a recorder
// among the consumers and a state log among the sinks, until the test
// ends; then no goroutine of it may be left.
func runNATPMP(t *testing.T, cfg config.Config, so session.Options) (*Daemon, *recorder, *stateLog) {
	t.Helper()
	cfg.Provider.Name = "natpmp"
	cfg.Providers = testProviders
	cfg.Proxy = config.Proxy{}
	cfg.API.Listen = ""
	states := newStateLog()
	rec := &recorder{}
	so.ProbeEvery, so.RehandshakeEvery = 200*time.Millisecond, 200*time.Millisecond
	so.Sinks = append(so.Sinks, states.sink)
	d, err := New(context.Background(), &cfg, Options{Log: slog.New(slog.DiscardHandler), Consumers: []publish.Consumer{rec}, Session: so})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; testkit.CheckNoLeaks(t) })
	return d, rec, states
}
