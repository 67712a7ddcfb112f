package main

import (
	"context"
	"strings"
	"testing"
)

// The CLI meets a new user: a version with its build, -h on every
// command (flags and defaults on stdout, exit 0), and a mistyped flag or
// command answered in two lines with the nearest names, not the whole
// list of flags.
func TestHelpAndVersion(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		env, out, _ := testEnv(nil)
		if code := run(ctx, env, args); code != 0 || !strings.HasPrefix(out.String(), "vpnfwd "+version+" (commit ") || !strings.Contains(out.String(), "go1.") {
			t.Errorf("%v: exit %d, %q", args, code, out.String())
		}
	}
	for _, c := range commands {
		for _, h := range []string{"-h", "--help"} {
			env, out, errb := testEnv(nil)
			if code := run(ctx, env, []string{c.name, h}); code != 0 || !strings.HasPrefix(out.String(), "Usage: vpnfwd "+c.name) {
				t.Errorf("%s %s: exit %d\nstdout %q\nstderr %q", c.name, h, code, out.String(), errb.String())
			}
		}
	}
	env, out, _ := testEnv(nil)
	if run(ctx, env, []string{"help", "up"}); !strings.Contains(out.String(), "(default 127.0.0.1:9070)") || !strings.Contains(out.String(), "Bring the tunnel up") {
		t.Errorf("up -h shows no defaults:\n%.600s", out.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--wg-confg", "x.conf"}, "Did you mean --wg-config? Run 'vpnfwd up -h' for its flags."},
		{[]string{"status", "--jsn"}, "Did you mean --json? Run 'vpnfwd status -h' for its flags."},
		{[]string{"stauts"}, "Did you mean status? Run 'vpnfwd help' for the commands."},
	} {
		env, out, errb := testEnv(nil)
		code := run(ctx, env, c.args)
		lines := strings.Count(strings.TrimSpace(errb.String()), "\n") + 1
		if code != 2 || !strings.Contains(errb.String(), c.want) || lines > 2 || out.String() != "" {
			t.Errorf("%v: exit %d, %d lines:\n%s", c.args, code, lines, errb.String())
		}
	}
}
