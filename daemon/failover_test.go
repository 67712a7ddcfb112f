package daemon

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/internal/testkit"
	"github.com/vpnfwd/vpnfwd/session"
)

// Two servers of one provider, each with its own NAT-PMP gateway and
// public address: the first is killed for good, vpnfwd moves to the
// second within its failover time, gets a port there (asking for the same
// number), every consumer hears it as a port change, and the internet
// reaches the service through the second server's public address. It
// stays there: nothing moves it back.
func TestFailoverToNextServer(t *testing.T) {
	pub2 := netip.MustParseAddr("127.77.0.2")
	srv1, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv1.Close()
	srv2, err := demo.Start(demo.Options{PublicBind: pub2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	w1, _ := srv1.NewClient()
	w2, _ := srv2.NewClient()
	w1.Config, w2.Config = "/etc/vpnfwd/one.conf", "/etc/vpnfwd/two.conf"
	svcAddr, _ := testkit.EchoService(t)
	cfg := config.Defaults()
	cfg.WireGuard, cfg.Servers = w1, append(cfg.Servers, w1, w2)
	cfg.WireGuard.Name = "-" // no control socket: /var/run/wireguard is the host's
	cfg.Forward.Target = svcAddr
	// FailoverAfter longer than two probe intervals (1.5 s each): one late
	// answer on a busy machine is no reason to move.
	d, rec, states := runNATPMP(t, cfg, session.Options{ProbeTimeout: time.Second, FailoverAfter: 4 * time.Second})

	states.wait(t, "up", 1, 5*time.Second)
	rec.wait(t, "port")
	port := d.Status().Port.Port
	if reply, err := testkit.TCP(testkit.PublicAddr(uint16(port)), "one"); err != nil || reply != "service got: one" {
		t.Fatalf("through the first server: %q %v", reply, err)
	}

	killed := time.Now()
	srv1.Close()
	addr2 := net.JoinHostPort(pub2.String(), strconv.Itoa(port))
	for {
		reply, err := testkit.TCP(addr2, "two")
		if err == nil && reply == "service got: two" {
			break
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("not reachable through the second server 10 s after the first died: %q %v (events %s)", reply, err, rec.reasons())
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("first server killed: port %d reachable through the second %s later", port, took.Round(10*time.Millisecond))
	// Reachable can come before the session has heard the new lease:
	// wait for it, with a deadline.
	settled := time.Now().Add(5 * time.Second)
	st := d.Status()
	for (st.Port.Dead != "" || strings.Count(rec.reasons(), "port") < 2) && time.Now().Before(settled) {
		time.Sleep(20 * time.Millisecond)
		st = d.Status()
	}
	if st.Tunnel.Failovers != 1 || st.Port.Port != port || st.Port.Dead != "" {
		t.Errorf("after the move: %d failovers, port %d (was %d), dead %q", st.Tunnel.Failovers, st.Port.Port, port, st.Port.Dead)
	}
	if st.Tunnel.Endpoint != srv2.Endpoint.String() {
		t.Errorf("endpoint %s, want the second server's %s", st.Tunnel.Endpoint, srv2.Endpoint)
	}
	// The move is a port change for the consumers (same number, another
	// server's address).
	if n := strings.Count(rec.reasons(), "port"); n < 2 {
		t.Errorf("consumers heard %q: the move is not a port change", rec.reasons())
	}
	// No flapping: a while later it is still on the second server.
	time.Sleep(2 * time.Second) // an observation window, not synchronisation
	if st := d.Status(); st.Tunnel.Failovers != 1 || st.Tunnel.Endpoint != srv2.Endpoint.String() {
		t.Errorf("moved again: %d failovers, endpoint %s", st.Tunnel.Failovers, st.Tunnel.Endpoint)
	}
}
