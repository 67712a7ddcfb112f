package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/internal/testkit"
	"github.com/vpnfwd/vpnfwd/internal/testnet"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/publish"
	"github.com/vpnfwd/vpnfwd/session"
)

// The PIA server forgets our key (as PIA's do after a restart or when a
// key sits unused): handshakes keep failing, so after FailoverAfter vpnfwd
// registers a fresh key, the tunnel comes back and the port is bound again
// and re-applied.
func TestPIARekeyWhenHandshakesKeepFailing(t *testing.T) {
	f, err := testnet.StartPIA(fmt.Sprintf("127.89.%d.2", os.Getpid()%250))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.rsa.4096.crt")
	os.WriteFile(ca, f.CAPEM(), 0o644)
	cfg := config.Defaults()
	cfg.WireGuard.Name = "-" // no control socket: /var/run/wireguard is the host's
	cfg.Providers = testProviders
	cfg.Provider = config.Provider{Name: "pia", Settings: provider.Settings{"username": f.Username, "password": f.Password, "ca_file": ca, "region": "de_berlin",
		"token_url": f.APIURL + "/api/client/v2/token", "serverlist_url": f.APIURL + "/vpninfo/servers/v6"}}
	cfg.Proxy = config.Proxy{}
	cfg.API.Listen = ""
	cfg.StateDir = filepath.Join(dir, "state")
	_, svcPort := testkit.EchoService(t)
	cfg.Forward.Target = fmt.Sprintf("127.0.0.1:%d", svcPort)
	states := newStateLog()
	rec := &recorder{}
	var recoveries []string
	var mu sync.Mutex
	d, err := New(context.Background(), &cfg, Options{Log: slog.New(slog.DiscardHandler), Roots: f.CA.Pool,
		Consumers: []publish.Consumer{rec},
		// The check is the tunnel's DNS server. Until it has answered once
		// the session trusts only the counters (StallAfter): on a loaded CI
		// machine a 150-ms check never answered, and the 30-s default
		// outlived the wait for "down". So the check gets the default's 1 s
		// and the counters rule a short StallAfter. The new key's server
		// gets FailoverAfter from the end of the move to answer: 3 s, as a
		// -race build on a busy machine can take over a second for the
		// handshake and the first check.
		Session: session.Options{ProbeEvery: 200 * time.Millisecond, ProbeTimeout: time.Second, StallAfter: 2 * time.Second,
			RehandshakeEvery: 200 * time.Millisecond, FailoverAfter: 3 * time.Second,
			Sinks: []session.Sink{states.sink, func(ev session.Event) {
				if ev.Kind == session.KindRecovery {
					mu.Lock()
					recoveries = append(recoveries, ev.Detail)
					mu.Unlock()
				}
			}}}})
	if err != nil {
		t.Fatal(err)
	}
	firstKey := cfg.WireGuard.PrivateKey.Public()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done; testkit.CheckNoLeaks(t) }()
	states.wait(t, "up", 1, 10*time.Second)
	rec.wait(t, "port")
	port := d.Status().Port.Port

	f.Server.Device.RemovePeer(firstKey)
	states.wait(t, "down", 1, 10*time.Second)
	states.wait(t, "up", 2, 15*time.Second)
	rec.wait(t, "reconnect")
	st := d.Status()
	if st.Tunnel.Failovers != 1 || st.Port.Port != port {
		mu.Lock()
		t.Errorf("after the server forgot our key: %d fresh keys, port %d (was %d); recovery steps %q", st.Tunnel.Failovers, st.Port.Port, port, recoveries)
		mu.Unlock()
	}
	// Reachable again from the internet, on the new key's address.
	deadline := time.Now().Add(5 * time.Second)
	for {
		reply, err := testkit.TCP(testkit.PublicAddr(uint16(port)), "after a new key")
		if err == nil && reply == "service got: after a new key" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d not reachable after the new key: %q %v", port, reply, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
