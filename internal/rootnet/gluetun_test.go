package rootnet

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGluetunDropIn: vpnfwd started with a gluetun environment (gluetun's
// wiki, providers/protonvpn and setup/advanced/vpn-port-forwarding; the
// server given by WIREGUARD_ENDPOINT_IP and WIREGUARD_PUBLIC_KEY) against
// Debian's wireguard-go and miniupnpd, with sidecars written the way
// gluetun's are: an `inotifywait -e close_write` watcher on the port file,
// a poller of /v1/openvpn/portforwarded reading .port with jq, `curl -u`
// against a basic-auth role of gluetun's auth file, and the up and down
// commands. All of them follow two port changes.
func TestGluetunDropIn(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "curl", "jq", "inotifywait")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	dir := t.TempDir()
	priv := wgQuickKey(t, v.ClientConf)

	auth := filepath.Join(dir, "config.toml")
	os.WriteFile(auth, []byte(`[[roles]]
name = "health"
auth = "none"
routes = ["GET /v1/vpn/status"]

[[roles]]
name = "poller"
auth = "apikey"
apikey = "s3cret-key"
routes = ["GET /v1/openvpn/portforwarded", "PUT /v1/vpn/status"]

[[roles]]
name = "script"
auth = "basic"
username = "sidecar"
password = "pa55word"
routes = ["GET /v1/portforward"]
`), 0o600)
	portFile := filepath.Join(dir, "forwarded_port")
	os.WriteFile(portFile, nil, 0o644) // the watcher watches the file itself
	hooks := filepath.Join(dir, "hooks")
	env := []string{
		"VPN_SERVICE_PROVIDER=protonvpn",
		"VPN_TYPE=wireguard",
		"WIREGUARD_PRIVATE_KEY=" + priv,
		"WIREGUARD_ADDRESSES=" + ClientIP + "/32",
		"WIREGUARD_PUBLIC_KEY=" + v.ServerPub.String(),
		"WIREGUARD_ENDPOINT_IP=" + UnderVPN,
		"WIREGUARD_ENDPOINT_PORT=" + strconv.Itoa(WGPort),
		"VPN_PORT_FORWARDING=on",
		"VPN_PORT_FORWARDING_STATUS_FILE=" + portFile,
		`VPN_PORT_FORWARDING_UP_COMMAND=/bin/sh -c 'echo "up {{PORTS}} {{VPN_INTERFACE}}" >> ` + hooks + `'`,
		`VPN_PORT_FORWARDING_DOWN_COMMAND=/bin/sh -c 'echo "down {{PORTS}} {{VPN_INTERFACE}}" >> ` + hooks + `'`,
		"HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH=" + auth,
		"FIREWALL_OUTBOUND_SUBNETS=192.168.77.0/24",
		"TZ=UTC",
		"DOT=off",
		// Not the host's /etc/resolv.conf (`ip netns exec` shares it):
		// vpnfwd's own variable overrides gluetun's setup.
		"VPNFWD_DNS_RESOLV_CONF=false",
		"VPNFWD_DNS_LISTEN=127.0.0.1:5353",
		"VPNFWD_STATE_DIR=" + filepath.Join(dir, "state"),
		"VPNFWD_WG_NAME=-",
	}

	// The port-file sidecar, as gluetun's users write it.
	watcher := n.Start(v.Cli, "sh", "-c", `inotifywait -m -e close_write `+portFile+` 2>&1 | while read -r line; do
		case "$line" in *CLOSE_WRITE*) echo "port=$(cat `+portFile+`)";; *) echo "$line";; esac
	done`)
	waitFor(t, func() bool { return strings.Contains(watcher.Out.String(), "Watches established") })

	up := n.Start(v.Cli, append(append([]string{"env"}, env...), bin, "up")...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vpnfwd log:\n%s\nwatcher:\n%s", up.Out, watcher.Out)
		}
	})
	api := "http://127.0.0.1:8000"
	curl := func(args ...string) (string, error) {
		return n.Exec(v.Cli, append([]string{"curl", "-s", "-m", "2"}, args...)...)
	}
	// gluetun's pollers treat port 0 as "not yet".
	polled := func() int {
		out, err := n.Exec(v.Cli, "sh", "-c", `curl -s -m 2 -H 'X-API-Key: s3cret-key' `+api+`/v1/openvpn/portforwarded | jq -r .port`)
		if err != nil {
			return -1
		}
		p, _ := strconv.Atoi(strings.TrimSpace(out))
		return p
	}
	waitPort := func(not int) int {
		t.Helper()
		var p int
		deadline := time.Now().Add(20 * time.Second)
		for {
			if p = polled(); p > 0 && p != not {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("the poller read port %d (want a port other than %d)", p, not)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// followed checks every sidecar at port p.
	followed := func(p int) {
		t.Helper()
		waitFor(t, func() bool { return strings.Contains(watcher.Out.String(), fmt.Sprintf("port=%d\n", p)) })
		if b, _ := os.ReadFile(portFile); string(b) != strconv.Itoa(p) {
			t.Errorf("port file %q, want %q (gluetun's: no newline)", b, strconv.Itoa(p))
		}
		out, err := curl("-u", "sidecar:pa55word", api+"/v1/portforward")
		if err != nil || out != fmt.Sprintf(`{"port":%d,"ports":[%d]}`+"\n", p, p) {
			t.Errorf("curl -u: %q %v", out, err)
		}
		waitFor(t, func() bool {
			b, _ := os.ReadFile(hooks)
			return strings.Contains(string(b), fmt.Sprintf("up %d wg0\n", p))
		})
	}

	p1 := waitPort(0)
	followed(p1)
	// The image's health check, `vpnfwd port`, finds gluetun's control
	// server and reads the port from the open /healthz (no role of the
	// auth file names /v1/port).
	if out, err := n.Exec(v.Cli, "env", "VPN_SERVICE_PROVIDER=protonvpn", bin, "port"); err != nil || strings.TrimSpace(out) != strconv.Itoa(p1) {
		t.Errorf("vpnfwd port with gluetun's environment: %q %v", out, err)
	}
	if out, _ := curl(api + "/v1/vpn/status"); out != `{"status":"running"}`+"\n" {
		t.Errorf("/v1/vpn/status without credentials (role none): %q", out)
	}
	for _, c := range [][]string{
		{api + "/v1/openvpn/portforwarded"},                           // no key
		{"-u", "sidecar:wrong", api + "/v1/portforward"},              // wrong password
		{"-H", "X-API-Key: s3cret-key", api + "/v1/portforward"},      // the key's role does not name it
		{"-u", "sidecar:pa55word", api + "/v1/openvpn/portforwarded"}, // nor the basic role this
	} {
		if out, _ := curl(append([]string{"-o", "/dev/null", "-w", "%{http_code}"}, c...)...); out != "401" {
			t.Errorf("curl %v: %s, want 401", c, out)
		}
	}

	// Two port changes: the gateway refuses the held port after a
	// restart, so vpnfwd is given another.
	p2 := p1
	for change := 1; change <= 2; change++ {
		prev := p2
		v.DenyPorts(prev)
		p2 = waitPort(prev)
		followed(p2)
		b, _ := os.ReadFile(hooks)
		if !strings.Contains(string(b), fmt.Sprintf("down %d wg0\nup %d wg0\n", prev, p2)) {
			t.Errorf("change %d: the down command for %d did not run before the up command for %d:\n%s", change, prev, p2, b)
		}
	}
	// A monitor script restarts the VPN as gluetun's users do (PUT
	// /v1/vpn/status stopped, then running): the down command runs, the
	// port comes back (the gateway gives it again or another).
	for _, st := range []string{"stopped", "running"} {
		out, err := curl("-X", "PUT", "-H", "X-API-Key: s3cret-key", "-d", `{"status":"`+st+`"}`, api+"/v1/vpn/status")
		if err != nil || out != `{"outcome":"`+st+`"}`+"\n" {
			t.Fatalf("PUT /v1/vpn/status %s: %q %v", st, out, err)
		}
		if st == "stopped" {
			waitFor(t, func() bool { return polled() == 0 })
		}
	}
	p2 = waitPort(0)
	followed(p2)

	// The service listens on the port it was told (the public one); the
	// gateway still delivers to the first internal port: an internet
	// peer reaches the service all the same.
	startEcho(t, n, v.Cli, fmt.Sprintf("0.0.0.0:%d", p2))
	for try := 0; ; try++ {
		err := n.InNS(v.Inet, func() error { return echoOnce(fmt.Sprintf("%s:%d", PublicAddr, p2), "hello") })
		if err == nil {
			break
		}
		if try == 50 {
			t.Fatalf("an internet peer through %s:%d: %v", PublicAddr, p2, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(hooks)
	t.Logf("first port %d, last %d (two changes, a stop and a start); hooks ran:\n%s", p1, p2, b)
	if !strings.HasSuffix(string(b), fmt.Sprintf("down %d wg0\n", p2)) {
		t.Errorf("no down command for %d at exit:\n%s", p2, b)
	}
	if b, _ := os.ReadFile(portFile); len(b) != 0 {
		t.Errorf("port file after exit: %q (want it emptied)", b)
	}
	if !strings.Contains(up.Out.String(), "gluetun environment read") || strings.Contains(up.Out.String(), priv) {
		t.Errorf("the log should say what the gluetun environment became, and never show the key:\n%s", up.Out)
	}
}

// wgQuickKey is the PrivateKey line of a wg-quick file.
func wgQuickKey(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.TrimSpace(k) == "PrivateKey" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no PrivateKey in %s", path)
	return ""
}
