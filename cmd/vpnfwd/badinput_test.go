package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/provider/all"
)

// TestBadInputSweep: bad values for every typed setting (as a flag and as
// its VPNFWD_* variable) and things that are not files where files are
// wanted. Each must end in an error that names the flag, variable, key or
// file, within seconds: no panic, no hang, no start.
func TestBadInputSweep(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte("[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.2.0.2/32\nDNS = 10.2.0.1\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 0.0.0.0/0\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o600)
	base := []string{"up", "--provider", "natpmp", "--wg-config", good, "--api", "", "--socks5", "", "--http-proxy", "", "--state-dir", filepath.Join(dir, "state"), "--wg-name", "-"}

	type tc struct {
		args []string
		env  map[string]string
		want []string // any of these in the error
	}
	var cases []tc
	keyOf := map[string]string{}
	for _, o := range config.AllOptions(all.Providers) {
		keyOf[o.Flag] = o.Key
	}
	// Typed settings: values their parser refuses.
	for _, o := range config.AllOptions(all.Providers) {
		for _, bad := range []string{"abc", "-7", "99999999999999999999", "1.5x", "0x1F"} {
			c := config.Defaults()
			c.Providers = all.Providers
			if o.Bool || o.Set(&c, bad) == nil {
				continue
			}
			names := []string{"--" + o.Flag, config.EnvName(o.Flag), o.Key}
			cases = append(cases,
				tc{args: append(append([]string{}, base...), "--"+o.Flag, bad), want: names},
				tc{args: base, env: map[string]string{config.EnvName(o.Flag): bad}, want: names})
		}
	}
	// Values the parser takes and validation refuses.
	for _, a := range [][]string{
		{"--forward", "127.0.0.1:99999"}, {"--forward", "[::1"}, {"--protocols", "icmp"}, {"--port-check", "ftp://x/{port}"},
		{"--port-check", "http://x/"}, {"--failover-after", "10ms"}, {"--dns-listen", "0.0.0.0:53"}, {"--dns-listen", "nope"},
		{"--dns-allow", "10.0.0.0/33"}, {"--allow-lan", "10.0.0.0/33"}, {"--api", "0.0.0.0:9070"}, {"--api", "localhost"},
		{"--http-proxy", "0.0.0.0:8118"}, {"--socks5", "0.0.0.0:1080"}, {"--tun", "a/b"}, {"--tun", "far-too-long-name"},
		{"--wg-name", "../x"}, {"--on-port", "'unterminated"}, {"--log-level", "loud"}, {"--only-uid", "-1"},
		{"--gateway", "not-an-ip"}, {"--lifetime", "1ms"}, {"--ports-count", "6"}, {"--state-dir", good},
		{"--public-ip-url", "::"}, {"--api-auth-default-role", "{"}, {"--provider", "nope"},
		{"--local-forward", "5432"}, {"--local-forward", "0.0.0.0:5432=db:5432"}, {"--local-forward", "5432=db:5432/sctp"},
		{"--local-forward-allow", "10.0.0.0/33"},
	} {
		cases = append(cases, tc{args: append(append([]string{}, base...), a...), want: []string{a[0], keyOf[strings.TrimPrefix(a[0], "--")]}})
	}
	// Files that are not files (or not there).
	for _, flag := range []string{"--config", "--wg-config", "--api-token-file", "--proxy-password-file", "--api-auth-config"} {
		for _, f := range []string{"/dev/zero", empty, fifo, filepath.Join(dir, "missing")} {
			cases = append(cases, tc{args: append(append([]string{}, base...), flag, f), want: []string{f}})
		}
	}
	if len(cases) < 100 {
		t.Fatalf("only %d cases", len(cases))
	}
	t.Logf("%d bad inputs", len(cases))
	for _, c := range cases {
		env, _, errb := testEnv(c.env)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		code := run(ctx, env, c.args)
		cancel()
		msg := errb.String()
		named := false
		for _, w := range c.want {
			named = named || (w != "" && strings.Contains(msg, w))
		}
		switch {
		case strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine "):
			t.Errorf("%v %v: panicked:\n%s", c.args[len(base):], c.env, msg)
		case time.Since(start) > 5*time.Second:
			t.Errorf("%v %v: took %s", c.args[len(base):], c.env, time.Since(start))
		case code == 0:
			t.Errorf("%v %v: accepted", c.args[len(base):], c.env)
		case !named:
			t.Errorf("%v %v: error names none of %q:\n%s", c.args[len(base):], c.env, c.want, msg)
		}
	}
}
