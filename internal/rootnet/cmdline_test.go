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

// TestExecSecretsNotInProc: every secret vpnfwd takes as a flag, given on
// its command line (each form the flag package takes), is gone from
// /proc once vpnfwd has read it: neither the confined CMD of `vpnfwd exec`
// nor an unprivileged user outside finds any of them in a /proc/PID/cmdline
// or environ it can read. vpnfwd warns of each, without the secret.
func TestExecSecretsNotInProc(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "setpriv", "grep")
	v := NewVPN(t, n, true)
	dir, err := os.MkdirTemp("", "vpnfwd-hC-cmdline-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	bin := BuildVPNFWD(t, dir)
	mark := fmt.Sprintf("%d-hC", os.Getpid())
	secrets := map[string]string{
		"qbittorrent URL password": "qburl-" + mark,
		"qbittorrent password":     "qbpw-" + mark,
		"transmission password":    "trpw-" + mark,
		"deluge password":          "dlpw-" + mark,
		"provider password":        "piapw-" + mark,
		"PIA dedicated IP token":   "dip-" + mark,
		"API default role's key":   "apikey-" + mark,
	}
	// The secrets, one a line, for grep -f: the searching grep's own
	// command line names only this file.
	var list strings.Builder
	for _, s := range secrets {
		list.WriteString(s + "\n")
	}
	patterns := filepath.Join(dir, "patterns")
	os.WriteFile(patterns, []byte(list.String()), 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o777)
	os.Chmod(out, 0o777)
	search := "grep -lF -f " + patterns + " /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null"
	script := fmt.Sprintf("%s > %s/found; echo done > %[2]s/done; exec sleep 1000", search, out)
	args := []string{bin, "exec", "--wg-config", v.ClientConf, "--provider", "natpmp", "--state-dir", filepath.Join(dir, "state"),
		"--api", "", "--wg-name", "-", "--user", "65534",
		"--qbittorrent", "http://admin:" + secrets["qbittorrent URL password"] + "@127.0.0.1:1/",
		"--qbittorrent-password", secrets["qbittorrent password"],
		"--transmission", "http://127.0.0.1:1/transmission/rpc", "--transmission-password=" + secrets["transmission password"],
		"--deluge", "http://127.0.0.1:1", "-deluge-password", secrets["deluge password"],
		"-password=" + secrets["provider password"],
		"--dip-token", secrets["PIA dedicated IP token"],
		"--api-auth-default-role", `{"auth":"apikey","apikey":"` + secrets["API default role's key"] + `"}`,
		"--", "sh", "-c", script}
	ex := n.Start(v.Cli, args...)
	defer ex.Signal(syscall.SIGTERM, 5*time.Second)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := os.Stat(filepath.Join(out, "done")); err == nil {
			break
		}
		if time.Now().After(deadline) || ex.Cmd.ProcessState != nil {
			t.Fatalf("CMD did not run within 20 s:\n%s", ex.Out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "found")); len(b) > 0 {
		t.Errorf("CMD found secrets in:\n%s", b)
	}
	// An unprivileged user outside, while vpnfwd and CMD run.
	found, _ := n.Exec("", "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "sh", "-c", search+"; true")
	if found != "" {
		t.Errorf("an unprivileged user found secrets in:\n%s", found)
	}
	// Root sees vpnfwd's command line with the values blanked.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ex.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	cmdline := strings.ReplaceAll(string(b), "\x00", " ")
	t.Logf("vpnfwd's command line: %s", cmdline)
	for what, s := range secrets {
		if strings.Contains(cmdline, s) {
			t.Errorf("vpnfwd's /proc/PID/cmdline shows the %s", what)
		}
		if strings.Contains(ex.Out.String(), s) {
			t.Errorf("vpnfwd's log shows the %s", what)
		}
	}
	if !strings.Contains(cmdline, "--qbittorrent-password xxx") || !strings.Contains(cmdline, "sh -c grep") {
		t.Errorf("vpnfwd's command line is not what it was less the secrets: %s", cmdline)
	}
	if w := strings.Count(ex.Out.String(), "was given on the command line"); w != len(secrets) {
		t.Errorf("%d warnings of a secret on the command line, want %d:\n%s", w, len(secrets), ex.Out)
	}
}
