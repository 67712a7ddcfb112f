package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vpnfwd check reads the configuration as up would and checks this
// machine for it: exit 0 and "all good", or exit 1 naming each problem.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "wg0.conf")
	os.WriteFile(conf, []byte("[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.2.0.2/32\nDNS = 10.2.0.1\n"+
		"[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 0.0.0.0/0\nEndpoint = 192.0.2.1:51820\n"), 0o600)
	state := filepath.Join(dir, "state")
	ctx := context.Background()
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"netstack", []string{"--provider", "protonvpn", "--wg-config", conf}, 0,
			[]string{"ok    configuration: provider protonvpn, 1 server(s), netstack", "check: all good"}},
		{"bad file", []string{"--provider", "protonvpn", "--wg-config", filepath.Join(dir, "none.conf")}, 1,
			[]string{"FAIL  configuration: reading WireGuard config"}},
		{"no provider", []string{"--wg-config", conf}, 1, []string{"FAIL  configuration: no provider"}},
	} {
		env, out, errb := testEnv(nil)
		code := run(ctx, env, append([]string{"check", "--state-dir", state}, c.args...))
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: exit %d, no %q in\n%s%s", c.name, code, w, out.String(), errb.String())
			}
		}
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s", c.name, code, c.code, out.String())
		}
	}
	// The kill switch needs CAP_NET_ADMIN: said either way.
	env, out, _ := testEnv(nil)
	code := run(ctx, env, []string{"check", "--state-dir", state, "--provider", "protonvpn", "--wg-config", conf, "--killswitch"})
	if os.Geteuid() == 0 && (code != 0 || !strings.Contains(out.String(), "ok    kill switch")) ||
		os.Geteuid() != 0 && (code != 1 || !strings.Contains(out.String(), "FAIL  kill switch: the kill switch needs root or CAP_NET_ADMIN")) {
		t.Errorf("kill switch as uid %d: exit %d\n%s", os.Geteuid(), code, out.String())
	}
}

// The completion scripts list the commands and each command's flags as
// its -h does; bash's completes a flag prefix.
func TestCompletion(t *testing.T) {
	ctx := context.Background()
	env, out, _ := testEnv(nil)
	if code := run(ctx, env, []string{"completion", "bash"}); code != 0 {
		t.Fatalf("completion bash: exit %d", code)
	}
	script := filepath.Join(t.TempDir(), "vpnfwd.bash")
	os.WriteFile(script, []byte(out.String()), 0o644)
	if _, err := exec.LookPath("bash"); err == nil {
		for words, want := range map[string]string{
			"vpnfwd st":              "status",
			"vpnfwd up --wg-con":     "--wg-config",
			"vpnfwd status --js":     "--json",
			"vpnfwd leak-check --si": "--simulate",
		} {
			w := strings.Fields(words)
			cmd := exec.Command("bash", "-c", `source "$0"; COMP_WORDS=($1); COMP_CWORD=$2; _vpnfwd; echo "${COMPREPLY[@]}"`,
				script, strings.Join(w, " "), strconv.Itoa(len(w)-1))
			got, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(got), want) {
				t.Errorf("%q: %q %v, want %s", words, got, err, want)
			}
		}
	}
	env, out, _ = testEnv(nil)
	if run(ctx, env, []string{"completion", "fish"}); !strings.Contains(out.String(), "complete -c vpnfwd -n '__fish_seen_subcommand_from up' -l wg-config") {
		t.Errorf("fish:\n%.400s", out.String())
	}
	env, out, _ = testEnv(nil)
	if run(ctx, env, []string{"completion", "zsh"}); !strings.HasPrefix(out.String(), "#compdef vpnfwd\n") {
		t.Errorf("zsh:\n%.200s", out.String())
	}
	env, _, errb := testEnv(nil)
	if code := run(ctx, env, []string{"completion", "tcsh"}); code != 2 || !strings.Contains(errb.String(), "bash, zsh or fish") {
		t.Errorf("tcsh: %d %s", code, errb.String())
	}
}
