package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
		must []string // and each of these (the value)
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
	// Values that parse but cannot be what they stand for: the error
	// names the setting and the value.
	long := strings.Repeat("t", 300)
	for _, a := range [][]string{
		{"--gateway", "0.0.0.0"}, {"--gateway", "255.255.255.255"}, {"--gateway", "224.0.0.1"}, {"--gateway", "127.0.0.1"},
		{"--forward", "127.0.0.1:0"}, {"--forward", ":0"}, {"--forward", "my host"},
		{"--local-forward", "5432=db host:5432"}, {"--port-file", empty}, {"--port-file", "/dev/full"},
		{"--state-dir", "/proc"}, {"--state-dir", "/proc/vpnfwd"}, {"--state-dir", "/sys/fs"},
		{"--wg-name", ""}, {"--wg-name", "-x"}, {"--killswitch-table", "my table"}, {"--killswitch-table", long},
		{"--api", "unix:@vpnfwd"}, {"--api", "unix:"},
		{"--api-auth-default-role", "null"}, {"--api-auth-default-role", "{}"}, {"--api-auth-default-role", `{"auth":""}`},
		{"--api-auth-default-role", `{"auth":"apikey","apikey":"k"}{"auth":"none"}`},
	} {
		flagName, value := strings.TrimPrefix(a[0], "--"), fmt.Sprintf("%.20s", a[1])
		if strings.HasPrefix(a[1], `{"auth":"apikey"`) {
			value = "data after the JSON object" // the key stays out of the error
		}
		cases = append(cases, tc{args: append(append([]string{}, base...), a...), want: []string{a[0], keyOf[flagName]}, must: []string{value}})
		if !slices.Contains(base, a[0]) { // base's flags win over the environment
			cases = append(cases, tc{args: base, env: map[string]string{config.EnvName(flagName): a[1]}, want: []string{a[0], config.EnvName(flagName), keyOf[flagName]}, must: []string{value}})
		}
	}
	// An API off loopback with settings that look like authentication
	// and yield none.
	comments := filepath.Join(dir, "auth.toml")
	os.WriteFile(comments, []byte("# [[roles]] to come\n"), 0o600)
	for _, a := range [][]string{
		{"--api-auth-default-role", "null"}, {"--api-auth-default-role", "{}"}, {"--api-auth-default-role", `{"auth":""}`},
		{"--api-auth-config", comments}, {"--api-auth-default-role", " "},
	} {
		cases = append(cases, tc{args: append(append([]string{}, base...), append([]string{"--api", "0.0.0.0:9070"}, a...)...), want: []string{a[0]}, must: []string{strings.TrimSpace(a[1])}})
	}
	cases = append(cases, tc{args: append(append([]string{}, base...), "--api", "0.0.0.0:9070"), want: []string{"--api"}, must: []string{"0.0.0.0:9070", "no authentication", "--api-token-file"}})
	// wg-quick files whose values parse but cannot be: each error names
	// the file, the line's value and what to give.
	goodText, _ := os.ReadFile(good)
	for i, bad := range []struct{ from, to, value string }{
		{"Endpoint = 192.0.2.1:51820", "Endpoint = 0.0.0.0:51820", "0.0.0.0"},
		{"Endpoint = 192.0.2.1:51820", "Endpoint = 255.255.255.255:51820", "255.255.255.255"},
		{"Endpoint = 192.0.2.1:51820", "Endpoint = 239.1.2.3:51820", "239.1.2.3"},
		{"Endpoint = 192.0.2.1:51820", "Endpoint = [ff02::1]:51820", "ff02::1"},
		{"Address = 10.2.0.2/32", "Address = 0.0.0.0/32", "0.0.0.0"},
		{"Address = 10.2.0.2/32", "Address = 127.0.0.1/32", "127.0.0.1"},
		{"Address = 10.2.0.2/32", "Address = 224.0.0.5/32", "224.0.0.5"},
		{"Address = 10.2.0.2/32", "Address = 10.2.0.2/0", "10.2.0.2/0"},
		{"Address = 10.2.0.2/32", "Address = 10.2.0.2/32, ::/0", "::/0"},
		{"DNS = 10.2.0.1", "DNS = 0.0.0.0", "0.0.0.0"},
		{"DNS = 10.2.0.1", "DNS = 127.0.0.1", "127.0.0.1"},
		{"DNS = 10.2.0.1", "DNS = 10.2.0.1=5", "10.2.0.1=5"},
		{"AllowedIPs = 0.0.0.0/0\n", "AllowedIPs = 0.0.0.0/0\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = 192.0.2.2:51820\nAllowedIPs = 10.0.0.0/8\n", "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="},
	} {
		path := filepath.Join(dir, fmt.Sprintf("bad%d.conf", i))
		os.WriteFile(path, []byte(strings.Replace(string(goodText), bad.from, bad.to, 1)), 0o600)
		cases = append(cases, tc{args: append(append([]string{}, base...), "--wg-config", path), want: []string{path}, must: []string{bad.value}})
	}
	// Files that are not files (or not there).
	for _, flag := range []string{"--config", "--wg-config", "--api-token-file", "--proxy-password-file", "--api-auth-config", "--api-auth-default-role-file"} {
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
		for _, w := range c.must {
			named = named && strings.Contains(msg, w)
		}
		switch {
		case strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine "):
			t.Errorf("%v %v: panicked:\n%s", c.args[len(base):], c.env, msg)
		case time.Since(start) > 5*time.Second:
			t.Errorf("%v %v: took %s", c.args[len(base):], c.env, time.Since(start))
		case code == 0:
			t.Errorf("%v %v: accepted", c.args[len(base):], c.env)
		case !named:
			t.Errorf("%v %v: error names none of %q, or not all of %q:\n%s", c.args[len(base):], c.env, c.want, c.must, msg)
		}
	}
}
