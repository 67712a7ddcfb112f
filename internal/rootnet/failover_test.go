package rootnet

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServerFailover: two servers of one provider (two wg-quick files,
// each server with its own wireguard-go and miniupnpd, Proton's
// addressing on both). The first server's wireguard-go is killed for
// good: the forwarded port must answer through the second server's public
// address within 10 s of the kill, in both data planes. In tun mode with
// the kill switch, the client's links carry nothing during the move but
// WireGuard to the two endpoints.
func TestServerFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	t.Run("netstack", func(t *testing.T) { serverFailover(t) })
	t.Run("tun", func(t *testing.T) { serverFailover(t, "--tun", "wgt", "--killswitch") })
}

func serverFailover(t *testing.T, extra ...string) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "curl", "tcpdump")
	v := NewVPN(t, n, true)
	v2 := v.AddServer(true)
	bin := BuildVPNFWD(t, t.TempDir())
	startEcho(t, n, v.Cli, "127.0.0.1:7777")
	tun := slices.Contains(extra, "--tun")
	var caps []*capture
	if tun {
		caps = []*capture{startCapture(t, n, v.Cli, "eth0"), startCapture(t, n, v.Cli, "eth1")}
	}
	args := append([]string{bin, "up", "--wg-config", v.ClientConf, "--wg-config", v2.ClientConf, "--provider", "natpmp",
		"--gateway", GatewayIP, "--forward", "127.0.0.1:7777", "--lifetime", "60s"}, extra...)
	up := n.Start(v.Cli, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vpnfwd log:\n%s", up.Out)
		}
	})
	port := waitForPort(t, n, v.Cli, bin)
	reach := func(public string) error {
		return n.InNS(v.Inet, func() error { return echoOnce(fmt.Sprintf("%s:%d", public, port), "probe") })
	}
	if err := reach(v.Public); err != nil {
		t.Fatalf("through the first server: %v", err)
	}

	v.KillServer()
	killed := time.Now()
	for {
		if err := reach(v2.Public); err == nil {
			break
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("port %d not reachable through the second server 10 s after the first was killed", port)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("first server killed for good: port %d reachable through the second %.1f s later", port, took.Seconds())

	out, err := n.Exec(v.Cli, "curl", "-sS", "--max-time", "2", "http://127.0.0.1:9070/v1/status")
	var st struct {
		Tunnel struct {
			Endpoint  string
			Failovers int
		}
		Port struct{ Port int }
	}
	if json.Unmarshal([]byte(out), &st); err != nil || st.Tunnel.Failovers != 1 || !strings.HasPrefix(st.Tunnel.Endpoint, UnderVPN2+":") || st.Port.Port != port {
		t.Errorf("status after the move: %+v %v", st, err)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Error(err)
	}
	for i, c := range caps {
		from, to := UnderCli, UnderVPN
		if i == 1 {
			from, to = UnderCli2, UnderVPN2
		}
		for _, l := range c.packets(t) {
			if strings.Contains(l, "IP "+from+".") && !strings.Contains(l, fmt.Sprintf("> %s.%d: UDP", to, WGPort)) {
				t.Errorf("leak on the link to server %d: %s", i+1, l)
			}
		}
	}
}
