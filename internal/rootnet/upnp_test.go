package rootnet

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upnpc runs miniupnpc's upnpc in ns (as the user uid, if not root)
// and returns what it printed.
func upnpc(n *Net, ns string, uid int, args ...string) string {
	argv := append([]string{"upnpc"}, args...)
	if uid != 0 {
		argv = append([]string{"setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(uid), "--clear-groups"}, argv...)
	}
	out, _ := n.ExecTimeout(ns, 20*time.Second, argv...)
	return out
}

var upnpcRedirectedRE = regexp.MustCompile(`external \S+:(\d+) TCP is redirected to internal \S+:7000`)

// TestAppsAskUPnPTunMode: in tun mode, miniupnpc's upnpc finds vpnfwd's
// IGD by SSDP in the namespace (the underlay's router is never asked),
// reads the VPN's public address, is refused any external port but the
// held one (718), maps the held one to its port 7000, and the internet
// reaches the app there; NAT-PMP and another user's upnpc can neither
// remove nor take that mapping; its owner's delete gives the port back,
// and a NAT-PMP app then gets it.
func TestAppsAskUPnPTunMode(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "natpmpc", "upnpc", "setpriv", "socat", "curl")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	startEcho(t, n, v.Cli, ":7000")
	up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "natpmp", "--dns-listen", "off")
	held := waitForPort(t, n, v.Cli, bin)
	events := n.Start(v.Cli, "curl", "-sN", "http://127.0.0.1:9070/v1/events")

	list := upnpc(n, v.Cli, 0, "-l")
	for _, want := range []string{"Found valid IGD : http://", "ExternalIPAddress = " + ReportedIP, "Connected"} {
		if !strings.Contains(list, want) {
			t.Fatalf("upnpc -l lacks %q:\n%s\n%s", want, list, up.Out)
		}
	}
	// Discovery works (above); the rest go straight to the description
	// it found, as an app that keeps its IGD does (2 s less each).
	m := regexp.MustCompile(`desc: (http://[0-9.]+:\d+/rootDesc\.xml)`).FindStringSubmatch(list)
	if m == nil {
		t.Fatalf("upnpc -l names no description:\n%s", list)
	}
	igd := m[1]
	// Its HTTP port is on every address of the namespace, for the
	// namespace alone: the LAN's router cannot connect to it.
	igdPort := regexp.MustCompile(`:(\d+)/`).FindStringSubmatch(igd)[1]
	if out, err := n.Exec(v.Server, "socat", "-T1", "/dev/null", "TCP:"+UnderCli+":"+igdPort+",connect-timeout=2"); err == nil {
		t.Errorf("the LAN's router connected to the IGD's port %s: %s", igdPort, out)
	}
	// Nor can another program take the apps' searches by binding the
	// SSDP socket's address beside vpnfwd's.
	if out, err := n.Exec(v.Cli, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		"socat", "-T1", "-u", "UDP4-RECV:1900,bind=127.0.0.1,reuseaddr", "/dev/null"); err == nil || !strings.Contains(out, "in use") {
		t.Errorf("another program bound 127.0.0.1:1900 beside vpnfwd: %v %s", err, out)
	}
	if out := upnpc(n, v.Cli, 0, "-u", igd, "-e", "app", "-a", "127.0.0.1", "7000", "7000", "TCP"); !strings.Contains(out, "718") {
		t.Errorf("a port vpnfwd does not hold (want 718 ConflictInMappingEntry):\n%s", out)
	}
	out := upnpc(n, v.Cli, 0, "-u", igd, "-e", "app", "-a", "127.0.0.1", "7000", strconv.Itoa(held), "TCP")
	if m := upnpcRedirectedRE.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(held) {
		t.Fatalf("upnpc -a for the held port %d:\n%s\n%s", held, out, up.Out)
	}
	reach := func(msg string) error {
		var err error
		for try := 0; try < 30; try++ { // the redirect follows the mapping
			if err = n.InNS(v.Inet, func() error { return echoOnce(fmt.Sprintf("%s:%d", PublicAddr, held), msg) }); err == nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}
	if err := reach("hello upnp"); err != nil {
		t.Fatalf("the internet reaching the app's port 7000 through %d: %v\n%s", held, err, up.Out)
	}
	upnpOnly := func(what string) {
		t.Helper()
		if _, ms := statusMappings(n, v.Cli, bin); len(ms) != 1 || ms[0].InternalPort != 7000 || ms[0].PublicPort != held || ms[0].Via != "upnp" {
			t.Fatalf("after %s: status app_mappings %+v", what, ms)
		}
	}
	upnpOnly("the mapping")
	waitForLong(t, 5*time.Second, func() bool {
		return strings.Contains(events.Out.String(), "event: app_mappings\ndata: [{\"protocol\":\"tcp\",\"internal_port\":7000,\"public_port\":"+strconv.Itoa(held))
	}, func() string { return "events:\n" + events.Out.String() })

	// Other apps, by the other protocols and as another user, can neither
	// remove nor take it.
	n.Exec(v.Cli, "natpmpc", "-a", "7000", "0", "tcp", "0")
	n.Exec(v.Cli, "natpmpc", "-a", "0", "0", "tcp", "0")
	if _, out := natpmpcMap(t, n, v.Cli, 7001, "tcp", 60); !strings.Contains(strings.ToUpper(out), "OUT OF RESOURCES") {
		t.Errorf("a NAT-PMP app while the IGD's mapping holds the port (want out of resources):\n%s", out)
	}
	upnpOnly("NAT-PMP's deletes")
	if out := upnpc(n, v.Cli, 65534, "-u", igd, "-d", strconv.Itoa(held), "TCP"); !strings.Contains(out, "606") {
		t.Errorf("another user's delete (want 606 Action not authorized):\n%s", out)
	}
	if out := upnpc(n, v.Cli, 65534, "-u", igd, "-e", "thief", "-a", "127.0.0.1", "7001", strconv.Itoa(held), "TCP"); !strings.Contains(out, "718") {
		t.Errorf("another user's mapping of the held port (want 718):\n%s", out)
	}
	upnpOnly("another user's tries")
	if err := reach("still the app"); err != nil {
		t.Fatalf("the app after the others' tries: %v", err)
	}

	// The owner gives it up; a NAT-PMP app then gets the port.
	if out := upnpc(n, v.Cli, 0, "-u", igd, "-d", strconv.Itoa(held), "TCP"); strings.Contains(out, "failed") {
		t.Fatalf("the owner's delete:\n%s", out)
	}
	waitForLong(t, 5*time.Second, func() bool { return strings.Contains(events.Out.String(), "event: app_mappings\ndata: []") },
		func() string { return "no event for the delete:\n" + events.Out.String() })
	if p, out := natpmpcMap(t, n, v.Cli, 7000, "tcp", 60); p != held {
		t.Fatalf("NAT-PMP after the IGD's delete: %d, want %d:\n%s", p, held, out)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if out := n.Must(v.Cli, "nft", "list", "tables"); strings.Contains(out, "vpnfwd_ssdp") || strings.Contains(out, "vpnfwd_igd") {
		t.Errorf("tables left after exit:\n%s", out)
	}
}

// msearch sends one SSDP M-SEARCH from ns to addr:1900 and returns the
// LOCATION of the first answer ("" if none within 2 s).
func msearch(t *testing.T, n *Net, ns, addr string) string {
	t.Helper()
	out, _ := n.ExecInput(ns, "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: upnp:rootdevice\r\n\r\n",
		"socat", "-T", "2", "-", "UDP4-DATAGRAM:"+addr+":1900")
	if m := regexp.MustCompile(`LOCATION: (\S+)`).FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// TestUPnPKillSwitchNothingLeaves: with the kill switch on and the LAN
// allowed, an app's SSDP never reaches the LAN's router: with the IGD on,
// its M-SEARCH to the multicast group out of the LAN interface and to the
// router's address are both answered by vpnfwd; with --upnp=false both
// are dropped (the multicast one by the kill switch's final drop, the
// one to the router's address, which allow_lan lets through, by its SSDP
// rule). A capture of the real link sees no datagram to port 1900.
func TestUPnPKillSwitchNothingLeaves(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "upnpc", "socat", "tcpdump")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	cap := startCapture(t, n, v.Server, "under")
	run := func(upnp string) *Proc {
		up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "natpmp", "--dns-listen", "off",
			"--killswitch", "--allow-lan", UnderVPN+"/24", "--upnp="+upnp)
		waitForPort(t, n, v.Cli, bin)
		return up
	}
	up := run("true")
	// vpnfwd answers, naming its IGD at the asker's own address.
	if loc := msearch(t, n, v.Cli, UnderVPN); !strings.HasPrefix(loc, "http://"+UnderCli+":") {
		t.Errorf("an M-SEARCH to the LAN router's address: answered with LOCATION %q, want vpnfwd's\n%s", loc, up.Out)
	}
	if out := upnpc(n, v.Cli, 0, "-m", "eth0", "-l"); !strings.Contains(out, "Found valid IGD : http://"+UnderCli+":") {
		t.Errorf("upnpc discovering out of the LAN interface found:\n%s", out)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	up = run("false")
	msearch(t, n, v.Cli, UnderVPN) // the capture says whether it left
	if out := upnpc(n, v.Cli, 0, "-m", "eth0", "-l"); strings.Contains(out, "Found valid IGD") {
		t.Errorf("with --upnp=false upnpc found:\n%s", out)
	}
	up.Signal(syscall.SIGTERM, 5*time.Second)
	for _, l := range cap.packets(t) {
		if strings.Contains(l, "IP "+UnderCli+".") && strings.Contains(l, ".1900: UDP") {
			t.Errorf("SSDP left on the real link: %s", l)
		}
	}
}

// TestTransmissionAsksByUPnP: a real transmission-daemon with port
// forwarding on (miniupnpc inside it) and its peer port the held one
// finds vpnfwd's IGD and maps TCP and UDP of that port there (NAT-PMP is
// off in vpnfwd, so the IGD alone answers), and a peer on the internet
// reaches it. It asks for its own peer port only: another is refused.
func TestTransmissionAsksByUPnP(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat", "transmission-daemon")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "natpmp", "--dns-listen", "off", "--nat-pmp=false")
	held := waitForPort(t, n, v.Cli, bin)
	// Its peer port already the held one, as vpnfwd's publisher left it
	// in settings.json: Transmission 3.00 asks the IGD once at start and
	// after a refusal (718) gives UPnP up until it restarts, even when
	// the publisher then changes its port (tried: nothing in 150 s).
	dir := t.TempDir()
	tr := n.Start(v.Cli, "transmission-daemon", "-f", "-g", dir, "-w", dir, "-P", strconv.Itoa(held), "-m", "-T", "-O", "-Y", "--log-debug")
	var ms []appMapping
	waitForLong(t, 40*time.Second, func() bool {
		_, ms = statusMappings(n, v.Cli, bin)
		return len(ms) > 0
	}, func() string { return up.Out.String() + "\n" + tr.Out.String() })
	t.Logf("Transmission's mappings: %+v", ms)
	for _, m := range ms {
		if m.Via != "upnp" || m.PublicPort != held || m.InternalPort != held {
			t.Errorf("mapping %+v, want Transmission's %d by UPnP", m, held)
		}
	}
	var err error
	for try := 0; try < 30; try++ {
		if err = n.InNS(v.Inet, func() error {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", PublicAddr, held), 2*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("a peer reaching Transmission on %d: %v\n%s", held, err, tr.Out)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestQBittorrentAsksByUPnP: a real qbittorrent-nox (libtorrent) with its
// default "UPnP / NAT-PMP" on and its listen port the held one, while
// vpnfwd's NAT-PMP is off so that only the IGD answers: libtorrent finds
// the IGD, maps TCP and UDP of its port there, and a peer on the
// internet reaches it. (vpnfwd's qBittorrent publisher turns the
// client's UPnP off: with it the publisher alone makes it reachable.)
func TestQBittorrentAsksByUPnP(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat", "qbittorrent-nox")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-config", v.ClientConf, "--provider", "natpmp", "--dns-listen", "off", "--nat-pmp=false")
	held := waitForPort(t, n, v.Cli, bin)
	profile := t.TempDir()
	conf := filepath.Join(profile, "qBittorrent", "config", "qBittorrent.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	os.WriteFile(conf, []byte(fmt.Sprintf("[LegalNotice]\nAccepted=true\n[Preferences]\nConnection\\PortRangeMin=%d\nWebUI\\Port=8080\n", held)), 0o644)
	n.Start(v.Cli, "qbittorrent-nox", "--profile="+profile)
	var ms []appMapping
	waitForLong(t, 30*time.Second, func() bool {
		_, ms = statusMappings(n, v.Cli, bin)
		return len(ms) > 1
	}, func() string { return up.Out.String() })
	t.Logf("qBittorrent's mappings: %+v", ms)
	for _, m := range ms {
		if m.Via != "upnp" || m.PublicPort != held || m.InternalPort != held {
			t.Errorf("mapping %+v, want qBittorrent's %d by UPnP", m, held)
		}
	}
	if out, err := n.ExecInput(v.Inet, "\x13BitTorrent protocol", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, held)); err != nil {
		t.Fatalf("a peer reaching qBittorrent on %d: %v %s\n%s", held, err, out, up.Out)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestAppsAskUPnPExec: under exec, CMD's upnpc (as an unprivileged user)
// finds vpnfwd's IGD inside CMD's namespace, reads the VPN's public
// address, maps the held port to its port 7000, and the internet reaches
// CMD's app there.
func TestAppsAskUPnPExec(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "upnpc", "socat")
	v := NewVPN(t, n, true)
	dir, bin, confPath := execDir(t, v, "vpnfwd-exec-upnp-")
	out := filepath.Join(dir, "upnp")
	// CMD lists the IGD, waits for the test to tell it the held port,
	// maps it, and serves.
	script := fmt.Sprintf(`upnpc -l > %[1]s.l.tmp 2>&1; mv %[1]s.l.tmp %[1]s.l
while [ ! -s %[1]s.held ]; do sleep 0.1; done
upnpc -e app -a 127.0.0.1 7000 $(cat %[1]s.held) TCP > %[1]s.a.tmp 2>&1; mv %[1]s.a.tmp %[1]s.a
exec socat TCP-LISTEN:7000,fork,reuseaddr SYSTEM:'echo hello-upnp-in-exec'`, out)
	ex := n.Start(v.Cli, bin, "exec", "--wg-config", confPath, "--provider", "natpmp", "--state-dir", filepath.Join(dir, "state"),
		"--user", "65534", "--", "sh", "-c", script)
	held := waitForPort(t, n, v.Cli, bin)
	wait := func(file string) string {
		for deadline := time.Now().Add(20 * time.Second); ; {
			if b, err := os.ReadFile(file); err == nil {
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("CMD did not write %s within 20 s:\n%s", file, ex.Out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if l := wait(out + ".l"); !strings.Contains(l, "Found valid IGD") || !strings.Contains(l, "ExternalIPAddress = "+ReportedIP) {
		t.Fatalf("upnpc -l in CMD:\n%s\n%s", l, ex.Out)
	}
	os.WriteFile(out+".held", []byte(strconv.Itoa(held)), 0o644)
	if a := wait(out + ".a"); upnpcRedirectedRE.FindStringSubmatch(a) == nil {
		t.Fatalf("upnpc -a in CMD:\n%s\n%s", a, ex.Out)
	}
	if reply, err := n.ExecUntil(v.Inet, "", "hello-upnp-in-exec", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, held)); err != nil {
		t.Fatalf("the internet reaching CMD's app on %d: %q %v\n%s", held, reply, err, ex.Out)
	}
	if _, ms := statusMappings(n, v.Cli, bin); len(ms) != 1 || ms[0].Via != "upnp" || ms[0].InternalPort != 7000 {
		t.Errorf("status app_mappings %+v", ms)
	}
	if _, err := ex.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
