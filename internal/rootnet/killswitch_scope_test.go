package rootnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/killswitch"
)

// TestKillSwitchScopeAndExit: --only-uid confines one user and leaves the
// others alone; a clean exit removes the rules; --lockdown keeps them.
func TestKillSwitchScopeAndExit(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "socat", "curl", "setpriv")
	v := NewVPN(t, n, false)
	bin := BuildVPNFWD(t, t.TempDir())
	startWhatsMyIP(t, n, v.Inet)
	direct := func(uid string) bool {
		args := []string{"curl", "-s", "-m", "3", "http://" + InetAddr + ":8080/"}
		if uid != "" {
			args = append([]string{"setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups"}, args...)
		}
		out, err := n.Exec(v.Cli, args...)
		return err == nil && strings.Contains(out, UnderCli)
	}
	// gets checks that a request does get out, allowing for a loaded
	// machine; a request that must be blocked is tried once.
	gets := func(uid string) bool {
		for try := 0; try < 3; try++ {
			if direct(uid) {
				return true
			}
		}
		return false
	}
	start := func(extra ...string) *Proc {
		p := n.Start(v.Cli, append([]string{bin, "up", "--wg-config", v.ClientConf, "--provider", "static", "--port", "4000", "--killswitch"}, extra...)...)
		waitFor(t, func() bool { _, err := n.Exec(v.Cli, bin, "port"); return err == nil })
		return p
	}
	status := func() string { return n.Must(v.Cli, bin, "killswitch", "status") }

	up := start("--only-uid", "4242")
	if direct("4242") {
		t.Error("user 4242 got out directly with --only-uid 4242")
	}
	if !gets("") {
		t.Error("root was confined although only user 4242 should be")
	}
	if !strings.Contains(status(), "scope uid") {
		t.Errorf("status: %s", status())
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status(), "kill switch: off") {
		t.Errorf("rules left after a clean exit:\n%s", status())
	}

	up = start("--lockdown")
	if direct("") {
		t.Error("got out directly with the kill switch on")
	}
	up.Signal(syscall.SIGTERM, 5*time.Second)
	if !strings.Contains(status(), "kill switch: on") || direct("") {
		t.Errorf("--lockdown: rules should stay after exit:\n%s", status())
	}
	n.Must(v.Cli, bin, "killswitch", "off")
	if !gets("") {
		rules, _ := n.Exec(v.Cli, "nft", "list", "ruleset")
		t.Errorf("still blocked after 'vpnfwd killswitch off'; ruleset:\n%s\nvpnfwd:\n%s", rules, up.Out)
	}
}

// TestKillSwitchOnlyCgroup: --only-cgroup confines the processes of one
// cgroup v2 group and leaves the rest alone.
func TestKillSwitchOnlyCgroup(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "socat", "curl", "nsenter")
	root, err := killswitch.CgroupV2Root()
	if err != nil {
		t.Skip(err)
	}
	group := fmt.Sprintf("vpnfwd-test-%d", os.Getpid())
	dir := filepath.Join(root, group)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup here: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	v := NewVPN(t, n, false)
	bin := BuildVPNFWD(t, t.TempDir())
	startWhatsMyIP(t, n, v.Inet)
	// `ip netns exec` remounts /sys, hiding the cgroup mounts: enter only
	// the network namespace, as a real deployment's processes are.
	netns := "--net=/run/netns/" + v.Cli
	direct := func(inGroup bool) bool {
		cmd := "exec curl -s -m 2 http://" + InetAddr + ":8080/"
		if inGroup {
			cmd = "echo $$ > " + filepath.Join(dir, "cgroup.procs") + " && " + cmd
		}
		out, err := n.Exec("", "nsenter", netns, "sh", "-c", cmd)
		return err == nil && strings.Contains(out, UnderCli)
	}
	up := n.Start("", "nsenter", netns, bin, "up", "--wg-config", v.ClientConf, "--provider", "static", "--port", "4000", "--killswitch", "--only-cgroup", group)
	waitFor(t, func() bool { _, err := n.Exec(v.Cli, bin, "port"); return err == nil })
	if direct(true) {
		t.Error("a process in the confined cgroup got out directly")
	}
	outside := false
	for try := 0; try < 3 && !outside; try++ { // allow for a loaded machine
		outside = direct(false)
	}
	if !outside {
		t.Errorf("a process outside the cgroup was confined\n%s", up.Out)
	}
	// systemd restarts the unit: the cgroup at the same path is a new one
	// (a new id). The rules follow it; its processes stay confined.
	if err := os.Remove(dir); err != nil {
		t.Fatalf("removing the cgroup: %v", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("re-creating the cgroup: %v", err)
	}
	waitFor(t, func() bool { return strings.Contains(up.Out.String(), "rules follow its new id") })
	if direct(true) {
		t.Error("after the cgroup was re-created, a process in it got out directly")
	}
	up.Signal(syscall.SIGTERM, 5*time.Second)
}

// A table vpnfwd did not make is never deleted or replaced, whatever name
// --killswitch-table or `killswitch off --table` gives.
func TestKillSwitchLeavesForeignTables(t *testing.T) {
	n := New(t, "nft", "wireguard-go")
	v := NewVPN(t, n, false)
	bin := BuildVPNFWD(t, t.TempDir())
	n.Must(v.Cli, "nft", "add", "table", "inet", "firewalld")
	n.Must(v.Cli, "nft", "add", "chain", "inet", "firewalld", "keep")
	if out, err := n.Exec(v.Cli, bin, "killswitch", "off", "--table", "firewalld"); err == nil || !strings.Contains(out, "is not vpnfwd's") {
		t.Errorf("killswitch off --table firewalld: %v\n%s", err, out)
	}
	out, err := n.ExecTimeout(v.Cli, 10*time.Second, bin, "up", "--wg-config", v.ClientConf, "--provider", "static", "--port", "4000",
		"--killswitch", "--killswitch-table", "firewalld", "--api", "", "--wg-name", "-")
	if err == nil || !strings.Contains(out, "exists and is not vpnfwd's") {
		t.Errorf("up --killswitch-table firewalld: %v\n%s", err, out)
	}
	if rules := n.Must(v.Cli, "nft", "list", "table", "inet", "firewalld"); !strings.Contains(rules, "chain keep") {
		t.Errorf("the foreign table changed:\n%s", rules)
	}
}
