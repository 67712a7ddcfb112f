package rootnet

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQBittorrentFollowsThePort: qbittorrent-nox in the client namespace,
// vpnfwd keeping it on the forwarded port; an internet host connects to it
// through the VPN server's public address, before and after the port
// changes (a restarted vpnfwd gets a new port from miniupnpd).
func TestQBittorrentFollowsThePort(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat", "qbittorrent-nox")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())

	profile := startQBittorrent(t, n, v.Cli)

	var last int
	for round := 1; round <= 2; round++ {
		up := n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "natpmp",
			"--qbittorrent", "http://127.0.0.1:8080", "--qbittorrent-user", "admin", "--qbittorrent-password", "adminadmin")
		port := waitForSyncedPort(t, n, v.Cli, bin)
		if round == 2 && port == last {
			t.Logf("miniupnpd gave the same port %d again; the change is not exercised", port)
		}
		last = port
		// qBittorrent listens on the port: an internet host's TCP
		// connection is accepted (a dead service would be refused).
		out, err := n.ExecInput(v.Inet, "\x13BitTorrent protocol", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, port))
		if err != nil {
			t.Fatalf("round %d: connecting to qBittorrent through %s:%d: %v %s\n%s", round, PublicAddr, port, err, out, up.Out)
		}
		jar := filepath.Join(profile, "cookies")
		prefs := n.Must(v.Cli, "sh", "-c", "curl -s -c "+jar+" -d username=admin -d password=adminadmin http://127.0.0.1:8080/api/v2/auth/login >/dev/null && curl -s -b "+jar+" http://127.0.0.1:8080/api/v2/app/preferences")
		if !strings.Contains(prefs, fmt.Sprintf(`"listen_port":%d`, port)) {
			t.Errorf("qBittorrent's listen_port is not %d", port)
		}
		if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
