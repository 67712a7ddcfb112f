package rootnet

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTunModeNeedsRights: up --tun without CAP_NET_ADMIN stops at once and
// says what it needs, before any later step (the DNS forwarder's port 53,
// which a user without rights could not open either) speaks of something
// else. Both ways of lacking it: a user other than root with the device
// open to all (as Debian ships it), and root with the capability dropped
// from its bounding set (a container without --cap-add NET_ADMIN).
func TestTunModeNeedsRights(t *testing.T) {
	n := New(t, "setpriv", "unshare", "mount")
	ns := n.NS("rights")
	dir, err := os.MkdirTemp("", "vpnfwd-rights-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	// A state directory every user may write in: the rights are what is
	// missing here, not a place for state.
	os.Mkdir(filepath.Join(dir, "state"), 0o777)
	os.Chmod(filepath.Join(dir, "state"), 0o777)
	bin := BuildVPNFWD(t, dir)
	conf := filepath.Join(dir, "client.conf")
	os.WriteFile(conf, []byte(`[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
Address = 10.2.0.2/32
DNS = 10.2.0.1

[Peer]
PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
Endpoint = 192.0.2.1:51820
AllowedIPs = 0.0.0.0/0
`), 0o644)
	// The machine's /dev/net/tun may be root's only: a node open to all
	// is bound over it in a mount namespace of the test's.
	node := filepath.Join(dir, "tun")
	if err := syscall.Mknod(node, syscall.S_IFCHR|0o666, 10<<8|200); err != nil {
		t.Fatal(err)
	}
	os.Chmod(node, 0o666)
	up := []string{bin, "up", "--tun", "wgr", "--wg-config", conf, "--provider", "static", "--port", "5000",
		"--state-dir", filepath.Join(dir, "state"), "--api", ""}
	for _, c := range []struct {
		name, want string
		wrap       []string
	}{
		{"nobody, device open to all", "CAP_NET_ADMIN", []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount --bind "$0" /dev/net/tun && exec "$@"`, node, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}},
		{"root without CAP_NET_ADMIN", "CAP_NET_ADMIN", []string{"setpriv", "--bounding-set", "-net_admin"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := n.Exec(ns, append(c.wrap, up...)...)
			if err == nil {
				t.Fatalf("up --tun started without the rights:\n%s", out)
			}
			if !strings.Contains(out, c.want) || strings.Contains(out, "DNS forwarder") {
				t.Fatalf("want an error naming %s first, got:\n%s", c.want, out)
			}
			if _, err := os.Stat(filepath.Join("/sys/class/net", "wgr")); err == nil {
				t.Fatal("a TUN was left behind")
			}
		})
	}
}
