package rootnet

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

type leakReport struct {
	Exit   int
	Checks []struct {
		Check, Result, Detail string
		Seconds               float64
	}
}

// leakTestbed is the namespace testbed with what leak-check asks: a
// what's-my-IP service and a port checker on the internet side, an IPv6
// service and a resolver on the client's LAN (outside the tunnel).
func leakTestbed(t *testing.T) (*Net, *VPN, string) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	n.Must(v.Server, "ip", "addr", "add", "fd00:65::1/64", "dev", "under", "nodad")
	n.Must(v.Cli, "ip", "addr", "add", "fd00:65::2/64", "dev", "eth0", "nodad")
	n.Start(v.Server, "socat", "TCP6-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo v6")
	n.Start(v.Server, "socat", "UDP-RECVFROM:53,fork", "SYSTEM:cat") // a resolver on the LAN
	startWhatsMyIP(t, n, v.Inet)
	self, _ := os.Executable()
	pc := n.Start(v.Inet, "env", "VPNFWD_HELPER=portcheck", "VPNFWD_ADDR=:9000", "VPNFWD_TARGET="+PublicAddr, self)
	waitFor(t, func() bool { return strings.Contains(pc.Out.String(), "ready") })
	return n, v, bin
}

func TestLeakCheck(t *testing.T) {
	n, v, bin := leakTestbed(t)
	n.Start(v.Cli, "socat", "TCP-LISTEN:7777,bind=127.0.0.1,fork,reuseaddr", "SYSTEM:cat")

	check := func(args ...string) leakReport {
		t.Helper()
		a := append([]string{bin, "leak-check", "--json", "--ip-url", "http://" + InetAddr + ":8080/",
			"--port-check-url", "http://" + InetAddr + ":9000/{port}", "--ipv6-target", "[fd00:65::1]:8080", "--dns-server", UnderVPN}, args...)
		start := time.Now()
		out, _ := n.ExecTimeout(v.Cli, 2*time.Minute, a...)
		t.Logf("leak-check %v took %s", args, time.Since(start).Round(time.Millisecond))
		var r leakReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("leak-check output: %v\n%s", err, out)
		}
		return r
	}
	results := func(r leakReport) map[string]string {
		m := map[string]string{}
		for _, c := range r.Checks {
			m[c.Check] = c.Result
		}
		return m
	}

	// With the kill switch: everything passes, outage included.
	up := n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "natpmp", "--forward", "127.0.0.1:7777", "--killswitch")
	waitFor(t, func() bool { _, err := n.Exec(v.Cli, bin, "port"); return err == nil })
	r := check("--simulate-outage", "--outage", "2s")
	for _, c := range r.Checks {
		t.Logf("%-10s %-5s %5.2fs %s", c.Check, c.Result, c.Seconds, c.Detail)
	}
	if r.Exit != 0 {
		t.Errorf("with the kill switch: exit %d\n%+v\n%s", r.Exit, r.Checks, up.Out)
	}
	for _, c := range []string{"exit-ip", "dns", "ipv6", "killswitch", "port", "outage"} {
		if results(r)[c] != "pass" {
			t.Errorf("%s: %s", c, results(r)[c])
		}
	}
	up.Signal(syscall.SIGTERM, 5*time.Second)

	// Without it: the leaks are found, exit 1.
	up = n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "natpmp", "--forward", "127.0.0.1:7777")
	waitFor(t, func() bool { _, err := n.Exec(v.Cli, bin, "port"); return err == nil })
	r = check()
	m := results(r)
	if r.Exit != 1 || m["exit-ip"] != "leak" || m["dns"] != "leak" || m["ipv6"] != "leak" || m["killswitch"] != "leak" || m["port"] != "pass" {
		t.Errorf("without the kill switch: exit %d %v\n%+v", r.Exit, m, r.Checks)
	}
	up.Signal(syscall.SIGTERM, 5*time.Second)

	// Standalone: no vpnfwd running; leak-check starts one from the config.
	r = check("--wg-config", v.ClientConf, "--provider", "natpmp")
	m = results(r)
	if r.Exit != 1 || m["exit-ip"] != "leak" || m["port"] != "error" && m["port"] != "pass" {
		t.Errorf("standalone: exit %d %v\n%+v", r.Exit, m, r.Checks)
	}
	for _, c := range r.Checks {
		if c.Check == "exit-ip" && !strings.Contains(c.Detail, "tunnel exits as "+PublicAddr) {
			t.Errorf("standalone exit-ip: %s", c.Detail)
		}
	}
}

// leak-check against vpnfwd --tun: apps' plain requests must exit through
// the TUN, names resolve through the forwarder (or a resolver routed
// through the TUN), and without the kill switch a resolver on the LAN and
// IPv6 outside the tunnel are found.
func TestLeakCheckTunMode(t *testing.T) {
	n, v, bin := leakTestbed(t)
	// The service: the forwarded port is redirected to 7777 (--forward).
	n.Start(v.Cli, "socat", "TCP-LISTEN:7777,fork,reuseaddr", "SYSTEM:cat")

	check := func(dnsServer string, args ...string) (leakReport, map[string]string) {
		t.Helper()
		a := append([]string{bin, "leak-check", "--json", "--ip-url", "http://" + InetAddr + ":8080/",
			"--port-check-url", "http://" + InetAddr + ":9000/{port}", "--ipv6-target", "[fd00:65::1]:8080", "--dns-server", dnsServer}, args...)
		out, _ := n.ExecTimeout(v.Cli, 2*time.Minute, a...)
		var r leakReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("leak-check output: %v\n%s", err, out)
		}
		m := map[string]string{}
		for _, c := range r.Checks {
			t.Logf("%-10s %-5s %5.2fs %s", c.Check, c.Result, c.Seconds, c.Detail)
			m[c.Check] = c.Result
		}
		return r, m
	}

	// Kill switch and the forwarder on 127.0.0.1:53: all pass, outage too.
	up := n.Start(v.Cli, bin, "up", "--tun", "wgt", "--wg-config", v.ClientConf, "--provider", "natpmp",
		"--forward", "127.0.0.1:7777", "--killswitch")
	waitForPort(t, n, v.Cli, bin)
	r, m := check("127.0.0.1", "--simulate-outage", "--outage", "2s")
	if r.Exit != 0 {
		t.Errorf("tun mode with the kill switch: exit %d\n%s", r.Exit, up.Out)
	}
	for _, c := range []string{"exit-ip", "dns", "ipv6", "killswitch", "port", "outage"} {
		if m[c] != "pass" {
			t.Errorf("tun mode with the kill switch: %s: %s", c, m[c])
		}
	}
	for _, c := range r.Checks {
		if c.Check == "exit-ip" && !strings.Contains(c.Detail, "apps exit as "+PublicAddr+", through the TUN wgt") {
			t.Errorf("exit-ip: %s", c.Detail)
		}
	}
	up.Signal(syscall.SIGTERM, 5*time.Second)

	// No kill switch, the LAN's resolver in use: apps still exit through
	// the TUN, but DNS and IPv6 leave around it.
	up = n.Start(v.Cli, bin, "up", "--tun", "wgt", "--wg-config", v.ClientConf, "--provider", "natpmp",
		"--forward", "127.0.0.1:7777")
	waitForPort(t, n, v.Cli, bin)
	r, m = check(UnderVPN)
	if r.Exit != 1 || m["exit-ip"] != "pass" || m["dns"] != "leak" || m["ipv6"] != "leak" || m["killswitch"] != "leak" || m["port"] != "pass" {
		t.Errorf("tun mode without the kill switch: exit %d %v", r.Exit, m)
	}
	up.Signal(syscall.SIGTERM, 5*time.Second)
}
