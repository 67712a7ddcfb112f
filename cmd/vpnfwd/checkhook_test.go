package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vpnfwd check finds a hook whose program is not there, as up does at
// start.
func TestCheckHooks(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "wg0.conf")
	os.WriteFile(conf, []byte("[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.2.0.2/32\nDNS = 10.2.0.1\n"+
		"[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 0.0.0.0/0\nEndpoint = 192.0.2.1:51820\n"), 0o600)
	for _, c := range []struct {
		hooks []string
		code  int
		want  string
	}{
		{[]string{"--on-port", "/bin/sh -c 'echo {{PORT}}'"}, 0, "ok    hook --on-port: its program is there"},
		{[]string{"--on-port-lost", "/no/such/hook {{PORT}}"}, 1, "FAIL  hook --on-port-lost: program /no/such/hook not found"},
	} {
		env, out, _ := testEnv(nil)
		args := append([]string{"check", "--state-dir", filepath.Join(dir, "state"), "--provider", "protonvpn", "--wg-config", conf}, c.hooks...)
		if code := run(context.Background(), env, args); code != c.code || !strings.Contains(out.String(), c.want) {
			t.Errorf("%q: exit %d, want %d and %q in\n%s", c.hooks, code, c.code, c.want, out.String())
		}
	}
}
