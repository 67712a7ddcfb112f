package rootnet

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
)

// TestTunModeSidecar is the Docker sidecar's shape: vpnfwd up --tun with
// the kill switch, and a real qbittorrent-nox in the same network
// namespace with no proxy settings at all, bound by vpnfwd to the tunnel's
// interface (as gluetun's users set it). Its listen port follows the
// forwarded port, an internet peer reaches it (with its real address),
// plain curl leaves with the VPN's address, names resolve through the
// forwarder, and the client's link carries nothing but WireGuard, also
// after kill -9.
func TestTunModeSidecar(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "dnsmasq", "dig", "socat", "curl", "tcpdump", "conntrack", "qbittorrent-nox")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	startWhatsMyIP(t, n, v.Inet)
	startResolver(n, v, GatewayIP)

	// The sidecar's order: the app starts once vpnfwd's kill switch is
	// in (compose's depends_on), so everything it sends from its first
	// packet on is on the capture. libtorrent asks its gateway
	// (100.65.7.1, outside the tunnel) for a port by PCP and NAT-PMP at
	// start-up and retries for about 10 s: dropped until vpnfwd's
	// responder takes them, never on the link. (Started before vpnfwd,
	// its retries were caught leaving before anything confined it.)
	cap := startCapture(t, n, v.Cli, "eth0")
	start := time.Now()
	// Its own device name: /var/run/wireguard is the host's, and other
	// packages' tests (vpnfwd as root, the default name) may run at once.
	wgName := fmt.Sprintf("vt%d", os.Getpid()%100000)
	up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "natpmp", "--killswitch", "--wg-name", wgName,
		"--qbittorrent", "http://127.0.0.1:8080", "--qbittorrent-user", "admin", "--qbittorrent-password", "adminadmin",
		"--qbittorrent-bind-interface")
	waitFor(t, func() bool {
		_, err := n.Exec(v.Cli, "nft", "list", "table", "inet", "vpnfwd")
		return err == nil
	})
	startQBittorrent(t, n, v.Cli)
	port := waitForSyncedPort(t, n, v.Cli, bin)
	t.Logf("start to port synced: %s", time.Since(start).Round(time.Millisecond))

	// A peer on the internet connects to qBittorrent through the VPN's
	// public address; qBittorrent sees the peer's own address.
	var peer net.Conn
	err := n.InNS(v.Inet, func() (err error) {
		peer, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", PublicAddr, port), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("peer connecting to qBittorrent through %s:%d: %v\n%s", PublicAddr, port, err, up.Out)
	}
	peer.Write([]byte("\x13BitTorrent protocol"))
	// (libtorrent closes connections at once while it has no torrents:
	// the client's connection tracking shows whom it came from.)
	ct, _ := n.Exec(v.Cli, "conntrack", "-L", "-p", "tcp", "--dport", fmt.Sprint(port))
	if !strings.Contains(ct, "src="+InetAddr+" ") {
		t.Errorf("the connection to qBittorrent is not from the peer's own address %s:\n%s", InetAddr, ct)
	}
	peer.Close()

	// Plain apps, no proxy: out through the tunnel, names through the
	// forwarder.
	if out, err := n.ExecUntil(v.Cli, "", PublicAddr, "curl", "-sS", "-m", "5", "http://"+InetAddr+":8080/"); err != nil {
		t.Errorf("curl without a proxy: %q %v (want the VPN's address %s)", out, err, PublicAddr)
	}
	if out, err := n.ExecUntil(v.Cli, "", InetAddr, "dig", "+time=2", "+tries=1", "+short", "@127.0.0.1", "vpn.test"); err != nil {
		t.Errorf("a name through the forwarder: %q %v", out, err)
	}
	if _, err := n.Exec(v.Cli, "wg", "show", wgName); err != nil {
		t.Errorf("wg show: %v", err)
	}
	// What wgctrl-based tools (exporters, dashboards) read off the device.
	if wc, err := wgctrl.New(); err != nil {
		t.Errorf("wgctrl: %v", err)
	} else {
		dev, err := wc.Device(wgName)
		switch {
		case err != nil:
			t.Errorf("wgctrl Device(%s): %v", wgName, err)
		case len(dev.Peers) != 1 || dev.Peers[0].PublicKey.String() != v.ServerPub.String() ||
			dev.Peers[0].LastHandshakeTime.IsZero() || dev.Peers[0].ReceiveBytes == 0 ||
			dev.Peers[0].Endpoint.String() != UnderVPN+":51820" || dev.FirewallMark != 0x7670:
			t.Errorf("wgctrl sees: %+v, peers %+v", dev, dev.Peers)
		}
		wc.Close()
	}

	// kill -9: the TUN goes with the process, the kill switch stays, and
	// nothing leaves.
	up.Cmd.Process.Signal(syscall.SIGKILL)
	up.Cmd.Wait()
	if out, err := n.Exec(v.Cli, "curl", "-sS", "-m", "2", "http://"+InetAddr+":8080/"); err == nil {
		t.Errorf("after kill -9 a plain request got out: %q", out)
	}
	if out, err := n.Exec(v.Cli, "dig", "+time=1", "+tries=1", "@"+UnderVPN, "vpn.test"); err == nil && !strings.Contains(out, "timed out") {
		t.Errorf("after kill -9 a lookup got out:\n%s", out)
	}
	pkts := cap.packets(t)
	if l := leaks(pkts); len(l) > 0 {
		t.Errorf("%d packets left the client's link besides WireGuard:\n%s", len(l), strings.Join(l[:min(len(l), 20)], "\n"))
	}
	n.Must(v.Cli, bin, "killswitch", "off")

	// A clean run leaves nothing behind: no device, no routing rules.
	up = n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "natpmp")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(up.Out.String(), "port forwarded"); {
		if time.Now().After(deadline) {
			t.Fatalf("restarted after kill -9, without the kill switch: no port in 10 s\n%s", up.Out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if out, err := n.Exec(v.Cli, "ip", "link", "show", "vpnfwd0"); err == nil {
		t.Errorf("the TUN is still there after exit:\n%s", out)
	}
	if rules := n.Must(v.Cli, "ip", "rule"); strings.Contains(rules, "51820") {
		t.Errorf("routing rules left after exit:\n%s", rules)
	}
}

// TestTunModeForwardRedirect: with --forward 0.0.0.0:PORT, tun mode
// redirects the forwarded port to PORT in the kernel (the service listens
// on all addresses); without vpnfwd the redirect is gone.
func TestTunModeForwardRedirect(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft")
	v := NewVPN(t, n, false)
	bin := BuildVPNFWD(t, t.TempDir())
	// The provider forwards port 4000 to the client (a static port).
	n.Must(v.Server, "nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub", "tcp", "dport", "4000", "dnat", "ip", "to", ClientIP)
	startEcho(t, n, v.Cli, ":7000")
	up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "static", "--port", "4000",
		"--forward", "0.0.0.0:7000", "--dns-listen", "off")
	waitForPort(t, n, v.Cli, bin)
	var err error
	for try := 0; try < 20; try++ { // the redirect follows the port event
		if err = n.InNS(v.Inet, func() error { return echoOnce(PublicAddr+":4000", "hello") }); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("echo through the forwarded port 4000 to the service on 7000: %v\n%s", err, up.Out)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if out := n.Must(v.Cli, "nft", "list", "tables"); strings.Contains(out, "vpnfwd_fwd") {
		t.Errorf("redirect table left after exit:\n%s", out)
	}
}
