package rootnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

// The pod and another host on its network: the other host is a stranger
// (issue 31, item 1).
const (
	podAddr   = "100.66.9.1"
	otherHost = "100.66.9.2"
)

// apiCall runs curl in ns for method path at addr with Host: localhost
// (what the attacker sends, hoping for the loopback pass) and extra curl
// arguments, and returns the HTTP code ("000": no connection) and body.
func apiCall(n *Net, ns, method, url string, extra ...string) (code, body string) {
	args := append([]string{"curl", "-s", "-m", "3", "-H", "Host: localhost", "-X", method, "-w", "\n%{http_code}"}, extra...)
	out, _ := n.Exec(ns, append(args, url)...)
	out = strings.TrimSpace(out)
	i := strings.LastIndexByte(out, '\n')
	return out[i+1:], out[:max(i, 0)]
}

// stopVPNFrom is the attack: gluetun's PUT /v1/vpn/status
// {"status":"stopped"} with Host: localhost.
func stopVPNFrom(n *Net, ns, url string, extra ...string) (code, body string) {
	return apiCall(n, ns, "PUT", url+"/v1/vpn/status", append([]string{"-d", `{"status":"stopped"}`}, extra...)...)
}

// waitAPI waits until the API at url answers from ns (any HTTP code).
func waitAPI(t *testing.T, n *Net, ns, url string, p *Proc) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _ := apiCall(n, ns, "GET", url+"/healthz"); code != "000" {
			return
		}
		if time.Now().After(deadline) || p.Cmd.ProcessState != nil {
			t.Fatalf("the API at %s never answered; vpnfwd:\n%s", url, p.Out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// refusedOrServing starts vpnfwd (args) in pod and waits until it exits
// (refused: its output) or its API at url answers the other host; then
// the other host attacks, and started says what the attack got.
func refusedOrServing(t *testing.T, n *Net, pod, other, url string, args []string) (out, started string) {
	t.Helper()
	p := n.Start(pod, args...)
	exited := make(chan struct{})
	go func() { p.Cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return p.Out.String(), ""
		default:
		}
		if code, _ := apiCall(n, other, "GET", url+"/healthz"); code != "000" {
			code, body := stopVPNFrom(n, other, url)
			p.Cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			return p.Out.String(), fmt.Sprintf("another host's PUT /v1/vpn/status with Host: localhost got %s %s", code, body)
		}
		if time.Now().After(deadline) {
			p.Cmd.Process.Kill()
			<-exited
			return p.Out.String(), "neither refused nor serving after 15 s"
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAPIAuthFromAnotherHost: vpnfwd's API on 0.0.0.0 in the pod; another
// host on the pod's network sends PUT /v1/vpn/status with Host:
// localhost. Behind a key it gets 401 and the tunnel keeps running; each
// setting that looks like authentication and yields none makes vpnfwd
// refuse to start; gluetun's HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE='{}'
// is gluetun's "no default role" (401), not an open API. Before f89c0db,
// null, {}, {"auth":""}, an empty auth file and gluetun's {} all served
// the attacker, who stopped the VPN.
func TestAPIAuthFromAnotherHost(t *testing.T) {
	n := New(t, "curl")
	pod, other := n.NS("hA-pod"), n.NS("hA-lan")
	n.Link(pod, "eth0", podAddr+"/24", other, "eth0", otherHost+"/24")
	bin := BuildVPNFWD(t, t.TempDir())
	dir := t.TempDir()

	// A server that never answers: the API serves from the start, the
	// tunnel stays "starting", which the attack would turn to "stopped".
	priv, _ := tunnel.NewPrivateKey()
	srv, _ := tunnel.NewPrivateKey()
	conf := filepath.Join(dir, "wg0.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[Interface]\nPrivateKey = %s\nAddress = 10.2.0.2/32\nDNS = 10.2.0.1\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 0.0.0.0/0\nEndpoint = %s:51820\n",
		priv.Base64(), srv.Public(), otherHost)), 0o600)
	up := func(extra ...string) []string {
		return append([]string{bin, "up", "--wg-config", conf, "--provider", "natpmp", "--gateway", "10.2.0.1",
			"--socks5", "", "--http-proxy", "", "--wg-name", "-"}, extra...)
	}
	url := "http://" + podAddr + ":9070"

	t.Run("a key protects it", func(t *testing.T) {
		p := n.Start(pod, up("--api", "0.0.0.0:9070", "--api-auth-default-role", `{"auth":"apikey","apikey":"k3y-of-the-pod"}`)...)
		defer p.Signal(syscall.SIGTERM, 5*time.Second)
		waitAPI(t, n, other, url, p)
		if code, body := stopVPNFrom(n, other, url); code != "401" {
			t.Errorf("another host, Host: localhost, no key: %s %s, want 401", code, body)
		}
		if code, body := stopVPNFrom(n, other, url, "-H", "X-API-Key: wrong"); code != "401" {
			t.Errorf("another host, wrong key: %s %s, want 401", code, body)
		}
		if code, body := stopVPNFrom(n, pod, "http://127.0.0.1:9070"); code != "401" {
			t.Errorf("the pod's own program without the key: %s %s, want 401", code, body)
		}
		code, body := apiCall(n, other, "GET", url+"/v1/vpn/status", "-H", "X-API-Key: k3y-of-the-pod")
		if code != "200" || strings.Contains(body, "stopped") {
			t.Errorf("after the attacks the tunnel is %s %s, want it still starting or running", code, body)
		}
		// The key does what it should.
		if code, body := stopVPNFrom(n, other, url, "-H", "X-API-Key: k3y-of-the-pod"); code != "200" || !strings.Contains(body, "stopped") {
			t.Errorf("with the key: %s %s, want 200 stopped", code, body)
		}
	})

	t.Run("settings that protect nothing are refused", func(t *testing.T) {
		empty := filepath.Join(dir, "empty.toml")
		comments := filepath.Join(dir, "comments.toml")
		os.WriteFile(empty, nil, 0o600)
		os.WriteFile(comments, []byte("# [[roles]] to be written\n"), 0o600)
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, "--api-token-file"},
			{[]string{"--api-auth-default-role", "null"}, "--api-auth-default-role"},
			{[]string{"--api-auth-default-role", "{}"}, "--api-auth-default-role"},
			{[]string{"--api-auth-default-role", `{"auth":""}`}, "--api-auth-default-role"},
			{[]string{"--api-auth-default-role", `{"auth":"apikey","apikey":"k"}{"auth":"none"}`}, "--api-auth-default-role"},
			{[]string{"--api-auth-config", empty}, empty},
			{[]string{"--api-auth-config", comments}, comments},
		} {
			if out, started := refusedOrServing(t, n, pod, other, "http://"+podAddr+":9071", up(append([]string{"--api", "0.0.0.0:9071"}, c.args...)...)); started != "" {
				t.Errorf("%q: vpnfwd started; %s", c.args, started)
			} else if !strings.Contains(out, c.want) {
				t.Errorf("%q: refused, but the error does not name %q:\n%s", c.args, c.want, out)
			}
		}
	})

	t.Run("no auth in so many words", func(t *testing.T) {
		p := n.Start(pod, up("--api", "0.0.0.0:9070", "--api-auth-default-role", `{"auth":"none"}`)...)
		defer p.Signal(syscall.SIGTERM, 5*time.Second)
		waitAPI(t, n, other, url, p)
		if code, body := stopVPNFrom(n, other, url); code != "200" {
			t.Errorf(`{"auth":"none"}: %s %s, want 200 (the user opened it)`, code, body)
		}
		if !strings.Contains(p.Out.String(), `has auth \"none\"`) && !strings.Contains(p.Out.String(), `has auth "none"`) {
			t.Errorf("no warning that the API is open:\n%s", p.Out)
		}
	})

	t.Run("gluetun's {}", func(t *testing.T) {
		env := []string{"env",
			"VPN_SERVICE_PROVIDER=protonvpn", "VPN_TYPE=wireguard", "WIREGUARD_PRIVATE_KEY=" + priv.Base64(),
			"WIREGUARD_ADDRESSES=10.2.0.2/32", "WIREGUARD_PUBLIC_KEY=" + srv.Public().String(), "WIREGUARD_ENDPOINT_IP=" + otherHost,
			"VPN_PORT_FORWARDING=on", "VPN_PORT_FORWARDING_STATUS_FILE=" + filepath.Join(dir, "forwarded_port"),
			"HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE={}",
			// Not the host's /etc/resolv.conf (`ip netns exec` shares it).
			"VPNFWD_DNS_RESOLV_CONF=false", "VPNFWD_DNS_LISTEN=127.0.0.1:5353", "VPNFWD_WG_NAME=-",
			"VPNFWD_KILLSWITCH_TABLE=hA_vpnfwd",
		}
		p := n.Start(pod, append(env, bin, "up")...)
		defer p.Signal(syscall.SIGTERM, 5*time.Second)
		gurl := "http://" + podAddr + ":8000"
		waitAPI(t, n, other, gurl, p)
		for _, from := range []struct{ ns, url string }{{other, gurl}, {pod, "http://127.0.0.1:8000"}} {
			if code, body := stopVPNFrom(n, from.ns, from.url); code != "401" {
				t.Errorf("gluetun's {}: PUT /v1/vpn/status from %s: %s %s, want 401 (no role covers it)", from.ns, code, body)
			}
			if code, body := apiCall(n, from.ns, "GET", from.url+"/v1/portforward"); code != "401" {
				t.Errorf("gluetun's {}: GET /v1/portforward from %s: %s %s, want 401", from.ns, code, body)
			}
		}
		if strings.Contains(p.Out.String(), "stopped on request") || strings.Contains(p.Out.String(), "tunnel stopped") {
			t.Errorf("the tunnel was stopped:\n%s", p.Out)
		}
	})
}
