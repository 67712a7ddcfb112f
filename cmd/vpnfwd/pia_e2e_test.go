package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/internal/testkit"
	"github.com/vpnfwd/vpnfwd/internal/testnet"
)

func TestUpPIA(t *testing.T) {
	f, err := testnet.StartPIA(fmt.Sprintf("127.89.%d.1", os.Getpid()%250))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	testRoots = f.CA.Pool // the token and server-list API (SSL_CERT_FILE for a real binary)
	defer func() { testRoots = nil }()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.rsa.4096.crt")
	os.WriteFile(ca, f.CAPEM(), 0o644)
	pw := filepath.Join(dir, "pia-password")
	os.WriteFile(pw, []byte(f.Password+"\n"), 0o600)
	stateDir := filepath.Join(dir, "state")
	portFile := filepath.Join(dir, "port")
	hook := filepath.Join(dir, "hook")
	_, svcPort := testkit.EchoService(t)
	args := func() []string {
		return []string{"up", "--provider", "pia", "--username", f.Username, "--password-file", pw, "--ca-file", ca,
			"--token-url", f.APIURL + "/api/client/v2/token", "--serverlist-url", f.APIURL + "/vpninfo/servers/v6", "--region", "de_berlin",
			"--forward", fmt.Sprintf("127.0.0.1:%d", svcPort), "--state-dir", stateDir, "--port-file", portFile,
			"--on-port", "sh -c 'echo {{port}} >> " + hook + "'",
			"--api", "unix:" + filepath.Join(dir, "api.sock"), "--socks5", "127.0.0.1:0", "--http-proxy", ""}
	}
	run1 := startRaw(t, args())
	port := run1.waitPort(t)
	if reply, err := testkit.TCP(testkit.PublicAddr(port), "via pia"); err != nil || reply != "service got: via pia" {
		t.Fatalf("through PIA's forwarded port: %q %v\n%s", reply, err, run1.log)
	}
	if !strings.Contains(run1.log.String(), "server list not verified") {
		t.Errorf("no warning about the unverified server list:\n%s", run1.log)
	}
	run1.stop(t)
	run2 := startRaw(t, args())
	if p2 := run2.waitPort(t); p2 != port {
		t.Errorf("port changed across a restart: %d then %d", port, p2)
	}
	waitFile(t, portFile, fmt.Sprint(port))
	run2.stop(t)
	b, _ := os.ReadFile(hook)
	if got := strings.Count(string(b), fmt.Sprint(port)); got != 2 {
		t.Errorf("hook ran %d times for port %d (once per run): %q", got, port, b)
	}
	if f.Issued() != 1 {
		t.Errorf("%d signatures: the saved payload should be reused", f.Issued())
	}
}
