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

// TestExecUnprivileged: vpnfwd exec run as nobody (setpriv --reuid 65534)
// puts CMD in a namespace of its own: two links only (lo and the TUN), out
// with the VPN's address, names through the forwarder, a service on
// $VPNFWD_PORT reached from the internet, and SIGTERM ends it all within
// 5 s with the command's status.
func TestExecUnprivileged(t *testing.T) { testExec(t, false) }

// TestExecAsRootUser: the same as root, with --user dropping CMD's
// privileges (no user namespace).
func TestExecAsRootUser(t *testing.T) { testExec(t, true) }

// envSecret stands for a password given to vpnfwd in its environment.
const envSecret = "env-secret-7f3a9c"

func testExec(t *testing.T, asRoot bool) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "dnsmasq", "socat", "curl", "setpriv", "getent", "unshare", "natpmpc")
	v := NewVPN(t, n, true)
	startWhatsMyIP(t, n, v.Inet)
	startResolver(n, v, GatewayIP)

	// Everything nobody needs, in a directory nobody can read and write.
	dir, bin, confPath := execDir(t, v, "vpnfwd-exec-test-")
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o777)
	os.Chmod(out, 0o777)

	script := fmt.Sprintf(`ip -o link | wc -l > %[1]s/links
curl -s -m 5 http://%[2]s:8080/ > %[1]s/ip
getent hosts vpn.test > %[1]s/dns
natpmpc -g %[3]s -a 0 0 udp 0 > %[1]s/natpmp 2>&1; echo "exit $?" >> %[1]s/natpmp
cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep -c %[4]s > %[1]s/environ
echo "$VPNFWD_PORT" > %[1]s/port
exec socat TCP-LISTEN:"$VPNFWD_PORT",fork,reuseaddr SYSTEM:'echo hello-from-exec'`, out, InetAddr, GatewayIP, envSecret)
	// Debian's /dev/net/tun is open to all (0666); this machine's may be
	// root's only. A node open to all is bound over it in a mount
	// namespace of the test's: the machine's own stays as it is.
	node := filepath.Join(dir, "tun")
	if err := syscall.Mknod(node, syscall.S_IFCHR|0o666, 10<<8|200); err != nil {
		t.Fatal(err)
	}
	os.Chmod(node, 0o666)
	start := time.Now()
	args := []string{bin, "exec", "--wg-config", confPath, "--provider", "natpmp", "--state-dir", filepath.Join(dir, "state"), "--api", ""}
	if asRoot {
		args = append(args, "--user", "65534")
	} else {
		args = append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" /dev/net/tun && exec "$@"`, node,
			"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, args...)
	}
	// A secret in vpnfwd's environment: no process CMD can see (vpnfwd,
	// its agent, CMD itself) may show it in /proc/PID/environ.
	args = append([]string{"env", "VPNFWD_PASSWORD=" + envSecret}, args...)
	ex := n.Start(v.Cli, append(args, "--", "sh", "-c", script)...)
	var port string
	for deadline := time.Now().Add(15 * time.Second); ; {
		b, _ := os.ReadFile(filepath.Join(out, "port"))
		if port = strings.TrimSpace(string(b)); port != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CMD did not start within 15 s:\n%s", ex.Out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The service answers the internet through the forwarded port.
	got, err := n.ExecUntil(v.Inet, "", "hello-from-exec", "socat", "-T2", "-", "TCP:"+PublicAddr+":"+port)
	if err != nil {
		t.Fatalf("service on $VPNFWD_PORT=%s from the internet: %q %v\n%s", port, got, err, ex.Out)
	}
	t.Logf("start to reachable: %s", time.Since(start).Round(time.Millisecond))
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(out, name))
		return strings.TrimSpace(string(b))
	}
	// CMD ran as nobody (its files are nobody's, in both modes).
	if fi, err := os.Stat(filepath.Join(out, "links")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("CMD's file is not nobody's: %v %+v", err, fi)
	}
	if e := read("environ"); e != "0" {
		t.Errorf("CMD read vpnfwd's secret from /proc/*/environ (%s times)", e)
	}
	if l := read("links"); l != "2" {
		t.Errorf("CMD sees %s links, want 2 (lo and the TUN)", l)
	}
	if ip := read("ip"); !strings.Contains(ip, PublicAddr) {
		t.Errorf("CMD's exit address %q, want the VPN's %s", ip, PublicAddr)
	}
	if dns := read("dns"); !strings.Contains(dns, InetAddr) {
		t.Errorf("CMD's lookup of vpn.test: %q", dns)
	}
	// The gateway's NAT-PMP port is vpnfwd's alone: CMD's "delete all my
	// mappings" (natpmpc, to the provider's gateway itself) is answered
	// by vpnfwd inside the namespace, and the gateway's mapping stays.
	t.Logf("natpmpc in CMD: %q", read("natpmp"))
	if np := read("natpmp"); !strings.Contains(np, "exit 0") {
		t.Errorf("CMD's natpmpc delete-all was not answered (by vpnfwd):\n%s", np)
	}
	if m, _ := n.Exec(v.Server, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd"); !strings.Contains(m, "dport "+port+" ") {
		t.Errorf("the gateway no longer maps %s after CMD's delete-all:\n%s", port, m)
	}
	took, err := ex.Signal(syscall.SIGTERM, 5*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, ex.Out)
	}
	t.Logf("SIGTERM to exit: %s (status %v)", took.Round(time.Millisecond), ex.Cmd.ProcessState)
	if code := ex.Cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("vpnfwd exited %d, want the command's 143 (SIGTERM)\n%s", code, ex.Out)
	}
	if !strings.Contains(ex.Out.String(), "released") {
		t.Errorf("the lease was not released at exit:\n%s", ex.Out)
	}
}

// TestExecAsRootHoldsCMD: root-run exec without --user still holds CMD:
// it is root of a user namespace mapped to an id of its own (vpnfwd's
// range, not nobody), so it can neither enter the host's network
// namespace, nor route, nor mount, nor signal a host process that runs
// as nobody.
func TestExecAsRootHoldsCMD(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "nsenter", "mount")
	v := NewVPN(t, n, true)
	dir, err := os.MkdirTemp("", "vpnfwd-exec-root-") // a path nobody can reach
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	bin := BuildVPNFWD(t, t.TempDir())
	victim := n.Start(v.Cli, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60")
	vpid := victim.Cmd.Process.Pid
	waitFor(t, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", vpid))
		return strings.Contains(string(b), "Uid:\t65534\t")
	})
	script := fmt.Sprintf(`cd /
kill -0 %[2]d 2>/dev/null; echo $? > %[1]s/kill
nsenter --net=/proc/1/ns/net true 2>/dev/null; echo $? > %[1]s/nsenter
ip route add 192.0.2.0/24 dev lo 2>/dev/null; echo $? > %[1]s/route
mkdir -p %[1]s/m; mount -t tmpfs none %[1]s/m 2>/dev/null; echo $? > %[1]s/mount
id -u > %[1]s/uid`, dir, vpid)
	out, err := n.ExecTimeout(v.Cli, 40*time.Second, bin, "exec", "--wg-config", v.ClientConf, "--provider", "natpmp",
		"--state-dir", filepath.Join(dir, "state"), "--api", "", "--wg-name", "-", "--", "sh", "-c", script)
	if err != nil {
		t.Fatalf("exec: %v\n%s", err, out)
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b))
	}
	if read("uid") != "0" {
		t.Errorf("CMD's uid inside %q, want 0 (root of its own user namespace)", read("uid"))
	}
	for _, step := range []string{"kill", "nsenter", "route", "mount"} {
		if r := read(step); r == "0" || r == "" {
			t.Errorf("CMD's %s: exit %q, want a refusal", step, r)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "uid")); err != nil {
		t.Error(err)
	} else if uid := fi.Sys().(*syscall.Stat_t).Uid; uid < 0x70000000 || uid > 0x7000FFFF {
		t.Errorf("CMD's file on the host is uid %d's, want an id of vpnfwd's range (0x70000000-0x7000FFFF)", uid)
	}
}

// TestExecNamesOnlyThroughTheTunnel: a host resolver daemon answering on a
// unix socket (a stand-in for nscd at /run/nscd/socket, in a mount
// namespace of the test's own) is out of CMD's reach, and CMD's
// nsswitch.conf sends host lookups to files and DNS only (vpnfwd's
// forwarder), whatever the host's says.
func TestExecNamesOnlyThroughTheTunnel(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "socat", "unshare")
	v := NewVPN(t, n, true)
	dir, err := os.MkdirTemp("", "vpnfwd-exec-dns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	bin := BuildVPNFWD(t, t.TempDir())
	script := fmt.Sprintf(`socat -T2 - UNIX-CONNECT:/run/nscd/socket > %[1]s/nscd 2>&1; echo "exit $?" >> %[1]s/nscd
grep '^hosts:' /etc/nsswitch.conf > %[1]s/nss`, dir)
	// The stand-in's output goes nowhere and it is killed at the end: a
	// process left holding the test's pipe would keep it open.
	wrapper := fmt.Sprintf(`mount -t tmpfs none /run && mkdir /run/nscd &&
socat UNIX-LISTEN:/run/nscd/socket,fork SYSTEM:'echo leaked-lookup' </dev/null >/dev/null 2>&1 &
S=$!
while [ ! -S /run/nscd/socket ]; do sleep 0.05; done
%s exec --wg-config %s --provider natpmp --state-dir %s/state --api "" --wg-name - -- sh -c "$0"
rc=$?; kill $S; exit $rc`, bin, v.ClientConf, dir)
	out, err := n.ExecTimeout(v.Cli, 40*time.Second, "unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper, script)
	if err != nil {
		t.Fatalf("exec: %v\n%s", err, out)
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b))
	}
	if r := read("nscd"); strings.Contains(r, "leaked-lookup") || strings.Contains(r, "exit 0") {
		t.Errorf("CMD reached the host's resolver socket: %q", r)
	}
	if r := read("nss"); r != "hosts: files dns" {
		t.Errorf("CMD's nsswitch hosts line %q, want \"hosts: files dns\"", r)
	}
}

// execDir is an exec test's directory: one every user may read and write
// (CMD runs as nobody), removed at the end, holding vpnfwd's binary and
// a copy of the client's wg-quick file.
func execDir(t *testing.T, v *VPN, prefix string) (dir, bin, confPath string) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	bin = BuildVPNFWD(t, dir)
	conf, _ := os.ReadFile(v.ClientConf)
	confPath = filepath.Join(dir, "client.conf")
	os.WriteFile(confPath, conf, 0o644)
	return dir, bin, confPath
}
