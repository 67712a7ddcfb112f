package rootnet

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dnsAnswered reports whether a query to server:port gets an answer.
func dnsAnswered(n *Net, ns, server string, port int) bool {
	out, err := n.Exec(ns, "dig", "+time=1", "+tries=1", "-p", fmt.Sprint(port), "@"+server, "example.com")
	return err == nil && !strings.Contains(out, "timed out") && !strings.Contains(out, "no servers")
}

// TestKillSwitchDNSHoles: the kill switch with --allow-lan must still keep
// every lookup in the tunnel: the LAN's resolver (a home router) is not
// asked, and neither is Docker's embedded resolver, which Docker reaches by
// rewriting 127.0.0.11:53 to a random port before any filter sees it (the
// rewrite is reproduced here as Docker installs it). Nor is the router
// asked for a port by NAT-PMP/PCP (it would open one on the real
// address; netstack mode has no responder to take it). Other LAN traffic
// still goes. Two vpnfwd in one namespace cannot take each other's table.
func TestKillSwitchDNSHoles(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat", "curl", "dig")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	// The "home router" on the client's LAN: a resolver and a web page.
	n.Start(v.Server, "socat", "UDP-RECVFROM:53,fork", "SYSTEM:cat")
	n.Start(v.Server, "socat", "TCP-LISTEN:8081,fork,reuseaddr", `SYSTEM:echo HTTP/1.0 200 OK; echo; echo router`)
	n.Start(v.Server, "socat", "UDP-RECVFROM:5351,bind="+UnderVPN+",fork", "SYSTEM:cat")
	routerMaps := func() bool {
		out, _ := n.ExecInput(v.Cli, "map me\n", "socat", "-T1", "-", "UDP:"+UnderVPN+":5351")
		return strings.Contains(out, "map me")
	}
	// Docker's resolver: listens on 127.0.0.11 at a random port, and a nat
	// rule sends 127.0.0.11:53 there (what Docker puts in every container).
	n.Start(v.Cli, "socat", "UDP-RECVFROM:35353,bind=127.0.0.11,fork", "SYSTEM:cat")
	docker := `table ip docker_nat {
	chain output { type nat hook output priority -100; policy accept; ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:35353; }
}
`
	if _, err := n.ExecInput(v.Cli, docker, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return dnsAnswered(n, v.Cli, "127.0.0.11", 53) && dnsAnswered(n, v.Cli, UnderVPN, 53) && routerMaps()
	})

	lan := "100.65.7.0/24"
	up := n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "natpmp", "--killswitch", "--allow-lan", lan)
	waitFor(t, func() bool {
		out, _ := n.Exec(v.Cli, bin, "port")
		return strings.TrimSpace(out) != ""
	})
	if dnsAnswered(n, v.Cli, "127.0.0.11", 53) {
		t.Error("Docker's embedded resolver answered through its nat rewrite")
	}
	if dnsAnswered(n, v.Cli, UnderVPN, 53) {
		t.Error("the LAN's resolver answered although allow_lan must not let DNS out")
	}
	if routerMaps() {
		t.Error("the LAN's router was asked for a port (UDP 5351) although allow_lan must not let NAT-PMP/PCP out")
	}
	out, err := n.ExecUntil(v.Cli, "", "router", "curl", "-s", "-m", "2", "http://"+UnderVPN+":8081/")
	if err != nil {
		t.Errorf("allow_lan: the LAN's web page did not answer: %q %v", out, err)
	}

	// A second vpnfwd in the same namespace refuses to take the table.
	second := n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "static", "--port", "5000", "--killswitch",
		"--api", "127.0.0.1:9071", "--socks5", "127.0.0.1:1081", "--http-proxy", "")
	if _, err := second.Signal(syscall.Signal(0), 10*time.Second); err == nil {
		// it exited by itself, as it should; what did it say?
		if !strings.Contains(second.Out.String(), "another vpnfwd") {
			t.Errorf("second instance: %s", second.Out)
		}
	} else {
		t.Errorf("a second vpnfwd took the kill switch table of the first:\n%s", second.Out)
	}
	if st := n.Must(v.Cli, bin, "killswitch", "status"); !strings.Contains(st, "kill switch: on") {
		t.Errorf("the first instance's rules are gone:\n%s", st)
	}

	// Sanity: without the kill switch both resolvers answer.
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !dnsAnswered(n, v.Cli, "127.0.0.11", 53) || !dnsAnswered(n, v.Cli, UnderVPN, 53) || !routerMaps() {
		t.Error("with vpnfwd stopped the resolvers should answer (else the checks above prove nothing)")
	}
	if t.Failed() {
		t.Logf("vpnfwd log:\n%s", up.Out)
	}
}
