package rootnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPIAInNamespaces: a PIA-like API beside a real WireGuard server
// (Debian's wireguard-go); vpnfwd with --provider pia and --killswitch logs
// in, registers its key, gets a port that an internet host reaches, and
// gets the same port after a restart. The kill switch lets only its login
// out before the tunnel exists.
func TestPIAInNamespaces(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "socat")
	v := NewVPN(t, n, false)
	bin := BuildVPNFWD(t, t.TempDir())
	dir := t.TempDir()
	ca, key := filepath.Join(dir, "ca.rsa.4096.crt"), filepath.Join(dir, "signing.pem")
	self, _ := os.Executable()
	fake := n.Start(v.Server, "env", "VPNFWD_HELPER=pia", "VPNFWD_WGIP="+UnderVPN, "VPNFWD_API="+UnderVPN+":8443",
		"VPNFWD_WGIF=wg"+n.prefix, "VPNFWD_SERVERKEY="+v.ServerPub.String(), fmt.Sprintf("VPNFWD_ENDPOINT=%s:%d", UnderVPN, WGPort),
		"VPNFWD_CA_OUT="+ca, "VPNFWD_KEY_OUT="+key, self)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fake PIA:\n%s", fake.Out)
		}
	})
	waitFor(t, func() bool { return strings.Contains(fake.Out.String(), "ready") })
	f := strings.Fields(fake.Out.String())
	user, pass := f[1], f[2]
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte(pass), 0o600)
	n.Start(v.Cli, "socat", "TCP-LISTEN:7777,bind=127.0.0.1,fork,reuseaddr", "SYSTEM:'sed -u s/^/pia-echo:/'")

	api := "https://" + UnderVPN + ":8443"
	up := func() *Proc {
		return n.Start(v.Cli, "env", "SSL_CERT_FILE="+ca, bin, "up", "--provider", "pia", "--username", user, "--password-file", pw,
			"--ca-file", ca, "--serverlist-key-file", key, "--token-url", api+"/api/client/v2/token", "--serverlist-url", api+"/vpninfo/servers/v6",
			"--forward", "127.0.0.1:7777", "--killswitch")
	}
	portOf := func(p *Proc) int {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("vpnfwd:\n%s", p.Out)
			}
		})
		return waitForPort(t, n, v.Cli, bin)
	}
	p1 := up()
	port := portOf(p1)
	out, err := n.ExecUntil(v.Inet, "hi\n", "pia-echo:hi", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, port))
	if err != nil || !strings.Contains(out, "pia-echo:hi") {
		t.Fatalf("internet -> PIA port %d: %q %v\n%s", port, out, err, p1.Out)
	}
	if _, err := p1.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p2 := up()
	if port2 := portOf(p2); port2 != port {
		t.Errorf("after a restart: port %d, want %d\n%s", port2, port, p2.Out)
	}
	p2.Signal(syscall.SIGTERM, 5*time.Second)
}
