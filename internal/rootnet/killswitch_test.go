package rootnet

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// capture runs tcpdump on the server's side of the client's link: what it
// sees is what left the protected namespace.
type capture struct {
	n    *Net
	ns   string
	file string
	proc *Proc
}

func startCapture(t *testing.T, n *Net, ns, iface string) *capture {
	file := filepath.Join(t.TempDir(), "cap.pcap")
	c := &capture{n: n, ns: ns, file: file, proc: n.Start(ns, "tcpdump", "-i", iface, "-nn", "-U", "-w", file)}
	waitFor(t, func() bool { return strings.Contains(c.proc.Out.String(), "listening on") })
	return c
}

// packets stops the capture and returns one line per IP packet.
func (c *capture) packets(t *testing.T) []string {
	c.proc.Signal(syscall.SIGINT, 5*time.Second)
	out, err := c.n.Exec(c.ns, "tcpdump", "-r", c.file, "-nn", "ip or ip6")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " IP ") || strings.Contains(l, " IP6 ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// leaks lists packets from the client that are not its WireGuard UDP to
// the endpoint (or IPv6 neighbour discovery, which keeps the link).
func leaks(lines []string) []string {
	var out []string
	wg := fmt.Sprintf("IP %s.", UnderCli)
	for _, l := range lines {
		fromCli := strings.Contains(l, wg) || strings.Contains(l, "IP6 fd00:65::2")
		if !fromCli {
			continue
		}
		if strings.Contains(l, fmt.Sprintf("> %s.%d: UDP", UnderVPN, WGPort)) {
			continue
		}
		if strings.Contains(l, "ICMP6, neighbor") || strings.Contains(l, "ICMP6, router solicitation") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// leaker is an app that ignores the proxy: plain TCP to the internet host,
// DNS to a resolver, and IPv6, over and over.
func leaker(n *Net, ns string) *Proc {
	script := fmt.Sprintf(`while true; do
curl -s -m 1 http://%s:8080/ && echo LEAK-TCP
dig +time=1 +tries=1 @%s example.com >/dev/null 2>&1 && echo LEAK-DNS
curl -s -m 1 'http://[fd00:65::1]:8080/' && echo LEAK-V6
sleep 0.1
done`, InetAddr, UnderVPN)
	return n.Start(ns, "sh", "-c", script)
}

func TestKillSwitchNothingLeaks(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat", "curl", "tcpdump", "dig")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	// IPv6 on the client's link, and services the leaker would reach.
	n.Must(v.Server, "ip", "addr", "add", "fd00:65::1/64", "dev", "under", "nodad")
	n.Must(v.Cli, "ip", "addr", "add", "fd00:65::2/64", "dev", "eth0", "nodad")
	startWhatsMyIP(t, n, v.Inet)
	n.Start(v.Server, "socat", "TCP6-LISTEN:8080,fork,reuseaddr", `SYSTEM:echo HTTP/1.0 200 OK; echo; echo v6`)
	n.Start(v.Server, "socat", "UDP-RECVFROM:53,fork", "SYSTEM:cat")

	cap := startCapture(t, n, v.Server, "under")
	up := n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "natpmp", "--killswitch")
	waitFor(t, func() bool {
		out, _ := n.Exec(v.Cli, bin, "port")
		return strings.TrimSpace(out) != "" && !strings.Contains(out, "no")
	})
	st := n.Must(v.Cli, bin, "killswitch", "status")
	if !strings.Contains(st, "kill switch: on") || !strings.Contains(st, fmt.Sprintf("%s:%d", UnderVPN, WGPort)) {
		t.Fatalf("killswitch status:\n%s", st)
	}
	leak := leaker(n, v.Cli)

	// Docker's embedded resolver (127.0.0.11, on loopback) answers from
	// outside the tunnel: the kill switch must block it too.
	n.Start(v.Cli, "socat", "UDP-RECVFROM:53,bind=127.0.0.11,fork", "SYSTEM:cat")
	if out, err := n.Exec(v.Cli, "dig", "+time=1", "+tries=1", "@127.0.0.11", "example.com"); err == nil && !strings.Contains(out, "timed out") && !strings.Contains(out, "no servers") {
		t.Errorf("a query to Docker's resolver 127.0.0.11 got an answer:\n%s", out)
	}

	// Through the proxy everything works, via the VPN.
	seen := n.Must(v.Cli, "curl", "-sS", "-m", "5", "-x", "socks5h://127.0.0.1:1080", "http://"+InetAddr+":8080/")
	if !strings.Contains(seen, PublicAddr) {
		t.Errorf("through the tunnel the host saw %q", seen)
	}
	time.Sleep(2 * time.Second)

	// The server becomes unreachable: vpnfwd retries, nothing else leaves.
	n.Must(v.Server, "nft", "add", "table", "inet", "outage")
	n.Must(v.Server, "nft", "add", "chain", "inet", "outage", "in", "{ type filter hook input priority -10; policy accept; }")
	n.Must(v.Server, "nft", "add", "rule", "inet", "outage", "in", "iifname", "under", "udp", "dport", fmt.Sprint(WGPort), "drop")
	time.Sleep(3 * time.Second)
	n.Must(v.Server, "nft", "delete", "table", "inet", "outage")

	// vpnfwd is killed: the rules stay.
	up.Cmd.Process.Signal(syscall.SIGKILL)
	up.Cmd.Wait()
	time.Sleep(2 * time.Second)
	if st := n.Must(v.Cli, bin, "killswitch", "status"); !strings.Contains(st, "kill switch: on") {
		t.Errorf("rules gone after kill -9:\n%s", st)
	}
	syscall.Kill(-leak.Cmd.Process.Pid, syscall.SIGKILL)
	leak.Cmd.Wait()

	pkts := cap.packets(t)
	if l := leaks(pkts); len(l) > 0 {
		t.Errorf("%d packets left the protected namespace besides WireGuard:\n%s", len(l), strings.Join(l[:min(len(l), 20)], "\n"))
	}
	wgSeen := 0
	for _, p := range pkts {
		if strings.Contains(p, fmt.Sprintf("> %s.%d: UDP", UnderVPN, WGPort)) {
			wgSeen++
		}
	}
	if wgSeen == 0 {
		t.Error("the capture saw no WireGuard traffic at all: it is not watching the right link")
	}
	if out := leak.Out.String(); strings.Contains(out, "LEAK") {
		t.Errorf("the app got through directly:\n%s", out)
	}

	// Sanity: with the rules removed, the same app does get out, so the
	// test above was not vacuous.
	n.Must(v.Cli, bin, "killswitch", "off")
	var out string
	var err error
	for try := 0; try < 3; try++ { // allow for a loaded machine
		if out, err = n.Exec(v.Cli, "curl", "-s", "-m", "3", "http://"+InetAddr+":8080/"); err == nil && strings.Contains(out, UnderCli) {
			break
		}
	}
	if dout, _ := n.Exec(v.Cli, "dig", "+time=1", "+tries=1", "@127.0.0.11", "example.com"); strings.Contains(dout, "timed out") {
		t.Errorf("without the kill switch the query to 127.0.0.11 should be answered (the check above proves nothing otherwise):\n%s", dout)
	}
	if err != nil || !strings.Contains(out, UnderCli) {
		t.Errorf("with the kill switch off the direct request should get out (showing %s): %q %v", UnderCli, out, err)
	}
}
