package rootnet

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCoreAgainstRealPeers: vpnfwd in the client namespace, Debian's
// wireguard-go as the VPN server, miniupnpd answering NAT-PMP; an internet
// host reaches the local service through the forwarded port, TCP and UDP.
func TestCoreAgainstRealPeers(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat", "curl")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())

	const svcPort = "7777"
	n.Start(v.Cli, "socat", "TCP-LISTEN:"+svcPort+",bind=127.0.0.1,fork,reuseaddr", "SYSTEM:'sed -u s/^/tcp-echo:/'")
	n.Start(v.Cli, "socat", "UDP-RECVFROM:"+svcPort+",bind=127.0.0.1,fork", "SYSTEM:'sed -u s/^/udp-echo:/'")
	startWhatsMyIP(t, n, v.Inet)

	start := time.Now()
	wgName := fmt.Sprintf("vf%d", os.Getpid()%100000)
	up := n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "natpmp", "--gateway", GatewayIP,
		"--forward", "127.0.0.1:"+svcPort, "--wg-name", wgName)
	port := waitForPort(t, n, v.Cli, bin)
	pub := fmt.Sprintf("%s:%d", PublicAddr, port)
	var tcp string
	waitFor(t, func() bool {
		tcp, _ = n.ExecInput(v.Inet, "hello\n", "socat", "-T2", "-", "TCP:"+pub)
		return strings.Contains(tcp, "tcp-echo:hello")
	})
	t.Logf("port %d reachable from the internet namespace %s after start", port, time.Since(start).Round(time.Millisecond))

	udp, err := n.ExecUntil(v.Inet, "hello\n", "udp-echo:hello", "socat", "-T2", "-", "UDP:"+pub)
	if err != nil || !strings.Contains(udp, "udp-echo:hello") {
		t.Errorf("UDP through %s: %q %v", pub, udp, err)
	}

	var st struct {
		State string
		Port  struct {
			Port     int
			PublicIP string `json:"public_ip"`
		}
	}
	out := n.Must(v.Cli, bin, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Port.Port != port || st.Port.PublicIP != ReportedIP {
		t.Errorf("status: %+v %v\n%s", st, err, out)
	}
	if human := n.Must(v.Cli, bin, "status"); !strings.Contains(human, fmt.Sprint(port)) {
		t.Errorf("status table lacks the port:\n%s", human)
	}

	// The SOCKS5 proxy reaches the internet host through the tunnel: the
	// host sees the VPN server's address, not the client's.
	seen := n.Must(v.Cli, "curl", "-sS", "--max-time", "5", "-x", "socks5h://127.0.0.1:1080", "http://"+InetAddr+":8080/")
	if !strings.Contains(seen, PublicAddr) {
		t.Errorf("through SOCKS5 the internet host saw %q, want %s", seen, PublicAddr)
	}
	seen = n.Must(v.Cli, "curl", "-sS", "--max-time", "5", "-x", "http://127.0.0.1:8118", "http://"+InetAddr+":8080/")
	if !strings.Contains(seen, PublicAddr) {
		t.Errorf("through the HTTP proxy the internet host saw %q", seen)
	}

	// WireGuard's own tool reads vpnfwd's device through its control socket.
	if show, err := n.Exec(v.Cli, "wg", "show", wgName); err != nil || !strings.Contains(show, v.ServerPub.String()) || !strings.Contains(show, "latest handshake") {
		t.Errorf("wg show %s: %v\n%s", wgName, err, show)
	}

	// miniupnpd holds the DNAT rule; SIGTERM releases it within 5 s.
	rules := n.Must(v.Server, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
	if !strings.Contains(rules, fmt.Sprint(port)) {
		t.Errorf("no DNAT for %d in miniupnpd's chain:\n%s", port, rules)
	}
	took, err := up.Signal(syscall.SIGTERM, 5*time.Second)
	if err != nil {
		t.Fatalf("vpnfwd did not stop on SIGTERM: %v\n%s", err, up.Out)
	}
	t.Logf("stopped %s after SIGTERM", took.Round(time.Millisecond))
	rules = n.Must(v.Server, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
	if strings.Contains(rules, fmt.Sprint(port)) {
		t.Errorf("mapping not deleted on exit:\n%s", rules)
	}
	if t.Failed() {
		t.Logf("vpnfwd log:\n%s", up.Out)
	}
}
