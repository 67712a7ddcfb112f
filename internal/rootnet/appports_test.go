package rootnet

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// appMappings reads vpnfwd's app mappings off `vpnfwd status --json`.
type appMapping struct {
	Protocol     string
	InternalPort int `json:"internal_port"`
	PublicPort   int `json:"public_port"`
	Via          string
}

func statusMappings(n *Net, ns, bin string) (port int, ms []appMapping) {
	var st struct {
		Port        struct{ Port int }
		AppMappings []appMapping `json:"app_mappings"`
	}
	out, err := n.Exec(ns, bin, "status", "--json")
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		return 0, nil
	}
	return st.Port.Port, st.AppMappings
}

var mappedRE = regexp.MustCompile(`Mapped public port (\d+) protocol (TCP|UDP) to local port (\d+) li(?:fe|f)time (\d+)`) // natpmpc 20150609 says "liftime"

// natpmpcMap runs Debian's natpmpc in ns (its gateway from the routes)
// and returns the public port it was given.
func natpmpcMap(t *testing.T, n *Net, ns string, internal int, proto string, lifetime int) (int, string) {
	t.Helper()
	out, _ := n.Exec(ns, "natpmpc", "-a", "0", strconv.Itoa(internal), proto, strconv.Itoa(lifetime))
	m := mappedRE.FindStringSubmatch(out)
	if m == nil {
		return 0, out
	}
	p, _ := strconv.Atoi(m[1])
	return p, out
}

// TestAppsAskTunMode: in tun mode, with no vpnfwd setting about it, apps
// in the namespace that ask "the gateway" for a port by NAT-PMP (Debian's
// natpmpc) or PCP (a client written here from RFC 6887: no Debian
// package has one) get the port vpnfwd holds, and the internet reaches
// them on it; a second app gets "out of resources"; a delete gives the
// port back; vpnfwd's own mapping at the provider's gateway stays.
func TestAppsAskTunMode(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "natpmpc", "socat", "curl")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	startEcho(t, n, v.Cli, ":7000")
	startWhatsMyIP(t, n, v.Inet)
	up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "natpmp", "--dns-listen", "off",
		"--local-forward", "127.0.0.1:9999="+InetAddr+":8080")
	held := waitForPort(t, n, v.Cli, bin)

	// natpmpc finds the namespace's default gateway (the underlay's,
	// 100.65.7.1): vpnfwd answers in its place.
	ext, _ := n.Exec(v.Cli, "natpmpc")
	if !strings.Contains(ext, "Public IP address : "+ReportedIP) {
		t.Errorf("natpmpc's public address (want the gateway's %s, as vpnfwd holds it):\n%s", ReportedIP, ext)
	}
	p, out := natpmpcMap(t, n, v.Cli, 7000, "tcp", 60)
	if p != held {
		t.Fatalf("natpmpc was given %d, want the held port %d:\n%s\n%s", p, held, out, up.Out)
	}
	var err error
	for try := 0; try < 30; try++ { // the redirect follows the mapping
		if err = n.InNS(v.Inet, func() error { return echoOnce(fmt.Sprintf("%s:%d", PublicAddr, p), "hello app") }); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the internet reaching the app's port 7000 through %d: %v\n%s", p, err, up.Out)
	}
	if _, ms := statusMappings(n, v.Cli, bin); len(ms) != 1 || ms[0].InternalPort != 7000 || ms[0].PublicPort != held || ms[0].Via != "nat-pmp" {
		t.Errorf("status app_mappings %+v", ms)
	}

	// A second app: no port is free.
	if _, out := natpmpcMap(t, n, v.Cli, 7001, "tcp", 60); !strings.Contains(strings.ToUpper(out), "OUT OF RESOURCES") {
		t.Errorf("a second app's request (want out of resources):\n%s", out)
	}
	if r := pcpMapFrom(t, n, v.Cli, UnderCli, UnderVPN, 7001); r.result != 8 {
		t.Errorf("a second app by PCP: %+v, want NO_RESOURCES (8)", r)
	}

	// The first app gives the port up; a PCP app takes it.
	if out, err := n.Exec(v.Cli, "natpmpc", "-a", "0", "7000", "tcp", "0"); err != nil {
		t.Fatalf("natpmpc delete: %v\n%s", err, out)
	}
	r := pcpMapFrom(t, n, v.Cli, UnderCli, UnderVPN, 7000)
	if r.result != 0 || r.external != uint16(held) || r.extAddr != netip.MustParseAddr(ReportedIP) || r.lifetime == 0 {
		t.Fatalf("PCP after the delete: %+v (held %d)", r, held)
	}
	for try := 0; try < 30; try++ {
		if err = n.InNS(v.Inet, func() error { return echoOnce(fmt.Sprintf("%s:%d", PublicAddr, held), "hello pcp") }); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the internet reaching the PCP app: %v\n%s", err, up.Out)
	}
	// vpnfwd's own mapping at the provider's gateway is untouched by all
	// of this.
	if m, _ := n.Exec(v.Server, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd"); !strings.Contains(m, fmt.Sprintf("dport %d ", held)) {
		t.Errorf("the gateway no longer maps %d:\n%s", held, m)
	}

	// The local forward (tun mode: a plain listener whose connections
	// leave through the TUN) reaches the internet side with the VPN's
	// address.
	if got, err := n.ExecUntil(v.Cli, "", PublicAddr, "curl", "-sS", "-m", "5", "http://127.0.0.1:9999/"); err != nil {
		t.Errorf("through the local forward: %q %v", got, err)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if out := n.Must(v.Cli, "nft", "list", "tables"); strings.Contains(out, "vpnfwd_pmp") || strings.Contains(out, "vpnfwd_fwd") {
		t.Errorf("tables left after exit:\n%s", out)
	}
}

// pcpResult is what a PCP MAP got.
type pcpResult struct {
	result   byte
	lifetime uint32
	external uint16
	extAddr  netip.Addr
	internal uint16
	raw      []byte
}

// pcpMapFrom sends a PCP MAP (RFC 6887 sections 7.1 and 11.1) for TCP
// port internal from src to gw:5351 in ns and reads the answer.
func pcpMapFrom(t *testing.T, n *Net, ns, src, gw string, internal uint16) pcpResult {
	t.Helper()
	var r pcpResult
	err := n.InNS(ns, func() error {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(gw), Port: 5351})
		if err != nil {
			return err
		}
		defer c.Close()
		b := make([]byte, 60)
		b[0], b[1] = 2, 1
		binary.BigEndian.PutUint32(b[4:], 600)
		a := netip.MustParseAddr(src).As16()
		copy(b[8:24], a[:])
		copy(b[24:36], "vpnfwd-nonce")
		b[36] = 6
		binary.BigEndian.PutUint16(b[40:], internal)
		for try := 0; try < 4; try++ {
			c.Write(b)
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			buf := make([]byte, 1100)
			m, err := c.Read(buf)
			if err != nil {
				continue
			}
			buf = buf[:m]
			if m < 60 || buf[0] != 2 || buf[1] != 0x81 {
				return fmt.Errorf("not a PCP MAP response: %x", buf)
			}
			r = pcpResult{result: buf[3], lifetime: binary.BigEndian.Uint32(buf[4:]), internal: binary.BigEndian.Uint16(buf[40:]),
				external: binary.BigEndian.Uint16(buf[42:]), extAddr: netip.AddrFrom16([16]byte(buf[44:60])).Unmap(), raw: buf}
			return nil
		}
		return fmt.Errorf("no PCP answer from %s", gw)
	})
	if err != nil {
		t.Fatalf("PCP MAP: %v", err)
	}
	return r
}

// TestAppsAskExec: under exec, CMD's NAT-PMP client finds the gateway in
// its namespace's default route, gets the held port, and the internet
// reaches CMD's app on it.
func TestAppsAskExec(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "natpmpc", "socat", "curl")
	v := NewVPN(t, n, true)
	startWhatsMyIP(t, n, v.Inet)
	dir, bin, confPath := execDir(t, v, "vpnfwd-exec-pmp-")
	out := filepath.Join(dir, "natpmp")
	script := fmt.Sprintf(`ip route > %[1]s.routes
natpmpc -a 0 7000 tcp 60 > %[1]s.tmp 2>&1; mv %[1]s.tmp %[1]s
exec socat TCP-LISTEN:7000,fork,reuseaddr SYSTEM:'echo hello-app-in-exec'`, out)
	ex := n.Start(v.Cli, bin, "exec", "--wg-config", confPath, "--provider", "natpmp", "--state-dir", filepath.Join(dir, "state"), "--api", "",
		"--user", "65534", "--local-forward", "127.0.0.1:9998="+InetAddr+":8080", "--", "sh", "-c", script)
	var got string
	for deadline := time.Now().Add(20 * time.Second); ; {
		if b, err := os.ReadFile(out); err == nil {
			got = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CMD's natpmpc did not finish within 20 s:\n%s", ex.Out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	routes, _ := os.ReadFile(out + ".routes")
	m := mappedRE.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("natpmpc in CMD got no mapping:\n%s\nroutes:\n%s\n%s", got, routes, ex.Out)
	}
	if !strings.Contains(string(routes), "default via ") {
		t.Errorf("CMD's default route names no gateway:\n%s", routes)
	}
	port := m[1]
	if reply, err := n.ExecUntil(v.Inet, "", "hello-app-in-exec", "socat", "-T2", "-", "TCP:"+PublicAddr+":"+port); err != nil {
		t.Fatalf("the internet reaching CMD's app on %s: %q %v\n%s", port, reply, err, ex.Out)
	}
	// A local forward under exec: a program outside CMD's namespace
	// reaches through CMD's tunnel.
	if got, err := n.ExecUntil(v.Cli, "", PublicAddr, "curl", "-sS", "-m", "5", "http://127.0.0.1:9998/"); err != nil {
		t.Errorf("through exec's local forward: %q %v", got, err)
	}
	if _, err := ex.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestQBittorrentAsksByItself: a real qBittorrent whose only setting is
// its own "UPnP / NAT-PMP port forwarding" (on by default), beside
// `vpnfwd up --tun --killswitch` with no publisher and no --forward, asks
// vpnfwd for a port, is given the held one, and the internet reaches it
// there. (Its request goes to the underlay's gateway, which the kill
// switch would drop: vpnfwd takes it first.)
func TestQBittorrentAsksByItself(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat", "conntrack", "qbittorrent-nox")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "natpmp", "--dns-listen", "off", "--killswitch")
	held := waitForPort(t, n, v.Cli, bin)
	// qBittorrent after vpnfwd: libtorrent asks its gateway at start and
	// gives up after a few tries if nothing answers.
	startQBittorrent(t, n, v.Cli)
	var ms []appMapping
	waitForLong(t, 30*time.Second, func() bool {
		_, ms = statusMappings(n, v.Cli, bin)
		return len(ms) > 0
	}, func() string { return up.Out.String() })
	t.Logf("qBittorrent's mappings: %+v", ms)
	for _, m := range ms {
		if m.PublicPort != held || m.InternalPort != 6881 {
			t.Errorf("mapping %+v, want qBittorrent's 6881 on the held port %d", m, held)
		}
	}
	var peer net.Conn
	var err error
	for try := 0; try < 30; try++ {
		if err = n.InNS(v.Inet, func() (err error) {
			peer, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", PublicAddr, held), 2*time.Second)
			return err
		}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("a peer reaching qBittorrent on %d: %v\n%s", held, err, up.Out)
	}
	peer.Write([]byte("\x13BitTorrent protocol"))
	ct, _ := n.Exec(v.Cli, "conntrack", "-L", "-p", "tcp", "--orig-port-dst", strconv.Itoa(held))
	if !strings.Contains(ct, "src="+InetAddr+" ") || !strings.Contains(ct, "sport=6881") {
		t.Errorf("the peer's connection did not reach qBittorrent's 6881 from its own address:\n%s", ct)
	}
	peer.Close()
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	n.Must(v.Cli, bin, "killswitch", "off")
}

// waitForLong is waitFor with a limit and a log to show on failure.
func waitForLong(t *testing.T, limit time.Duration, ok func() bool, log func() string) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s:\n%s", limit, log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
