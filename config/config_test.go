package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/natpmp"
	"github.com/vpnfwd/vpnfwd/provider/pia"
	"github.com/vpnfwd/vpnfwd/provider/protonvpn"
)

// testProviders are the providers the tests know.
var testProviders = provider.MustList(natpmp.Info, pia.Info, protonvpn.Info)

func fmtV(v any) string { return fmt.Sprintf("%v %+v %#v", v, v, v) }

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs, testProviders)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "vpnfwd.toml", `
[provider]
name = "natpmp"
gateway = "10.2.0.1"
[forward]
target = "127.0.0.1:1000"
[proxy]
socks5 = "127.0.0.1:1081"
`)
	cfg, err := load(t, []string{"--config", cfgFile, "--forward", "127.0.0.1:3000"},
		map[string]string{"VPNFWD_FORWARD": "127.0.0.1:2000", "VPNFWD_GATEWAY": "10.9.0.1", "VPNFWD_HTTP_PROXY": ""})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Forward.Target != "127.0.0.1:3000" {
		t.Errorf("flag should beat env and file: %s", cfg.Forward.Target)
	}
	if g := cfg.Provider.Settings.String("gateway"); g != "10.9.0.1" {
		t.Errorf("env should beat file: %s", g)
	}
	if cfg.Proxy.SOCKS5 != "127.0.0.1:1081" || cfg.Provider.Name != "natpmp" {
		t.Errorf("file should beat default: %+v", cfg)
	}
	if cfg.Proxy.HTTP != "" {
		t.Errorf("VPNFWD_HTTP_PROXY= should turn the HTTP proxy off, got %q", cfg.Proxy.HTTP)
	}
	if cfg.API.Listen != "127.0.0.1:9070" {
		t.Errorf("default API %s", cfg.API.Listen)
	}
}

func TestEveryFlagHasEnv(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range AllOptions(testProviders) {
		e := EnvName(o.Flag)
		if seen[e] || !strings.HasPrefix(e, "VPNFWD_") || o.Key == "" {
			t.Errorf("option %s: env %s key %q", o.Flag, e, o.Key)
		}
		seen[e] = true
	}
}

func TestTOMLErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, text, want string }{
		{"bad key", "[wireguard]\nprivate_key = \"abc\"\n", "vpnfwd.toml:2"},
		{"syntax", "[provider\nname = 1\n", "vpnfwd.toml:2"},
		{"bad cidr", "[wireguard]\naddress = [\"10.0.0.1/99\"]\n", "vpnfwd.toml:2"},
		{"bad duration", "[forward]\nudp_idle_timeout = \"soon\"\n", "vpnfwd.toml:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, "vpnfwd.toml", tt.text)
			_, err := load(t, []string{"--config", p}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestInlineTunnelAndValidation(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "vpnfwd.toml", `
log_level = "debug"
bogus = 1
[wireguard]
private_key = "`+testPriv+`"
address = ["10.2.0.2/32"]
dns = ["10.2.0.1"]
[[wireguard.peer]]
public_key = "`+testPub+`"
endpoint = "vpn.example.com:51820"
allowed_ips = ["0.0.0.0/0"]
persistent_keepalive = 25
[forward]
udp_idle_timeout = "30s"
[[publish]]
type = "file"
path = "/tmp/port"
`)
	cfg, err := load(t, []string{"--config", p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.LoadTunnel(); err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.Forward.UDPIdle) != 30*time.Second || len(cfg.WireGuard.Peers) != 1 {
		t.Errorf("%+v", cfg.Forward)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "bogus") {
		t.Errorf("warnings %v", cfg.Warnings)
	}
}

func TestWGConfigRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "wg0.conf", protonConf)
	p := writeFile(t, dir, "vpnfwd.toml", "[wireguard]\nconfig = \"wg0.conf\"\n")
	cfg, err := load(t, []string{"--config", p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.LoadTunnel(); err != nil {
		t.Fatal(err)
	}
	if cfg.WireGuard.Address[0].String() != "10.2.0.2/32" {
		t.Errorf("%+v", cfg.WireGuard)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--protocols", "tcp,sctp"}, `forward.protocols: "sctp"`},
		{[]string{"--api", "0.0.0.0:9070"}, "set api.token_file"},
		{[]string{"--api", "nonsense"}, "is not IP:PORT or unix:PATH"},
		{[]string{"--socks5", "localhost"}, "proxy.socks5"},
		{[]string{"--forward", "127.0.0.1:99999"}, "port must be 0-65535"},
		{[]string{"--max-udp-flows", "-1"}, "forward.max_udp_flows: -1: want a number from 1"},
		{[]string{"--socks5", "0.0.0.0:1080"}, "proxy.socks5 = 0.0.0.0:1080 is reachable from other hosts: set proxy.username"},
		{[]string{"--http-proxy", "192.168.1.2:8118"}, "proxy.http = 192.168.1.2:8118 is reachable"},
		{[]string{"--max-connections", "0"}, "forward.max_connections: 0"},
		{[]string{"--idle-timeout", "0s"}, "forward.idle_timeout: 0s: want at least 1s"},
		{[]string{"--tun", "a/b"}, `wireguard.tun: "a/b" is not an interface name`},
		{[]string{"--tun", "a-name-far-too-long"}, "at most 15 characters"},
	}
	for _, tt := range tests {
		cfg, err := load(t, tt.args, nil)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
	if _, err := load(t, []string{"--port", "0"}, nil); err == nil {
		t.Error("--port 0 accepted")
	}
	cfg, _ := load(t, []string{"--api", "unix:/run/x.sock"}, nil)
	if err := cfg.Validate(); err != nil {
		t.Errorf("unix socket API: %v", err)
	}
	cfg, _ = load(t, []string{"--socks5", "0.0.0.0:1080", "--proxy-username", "u", "--proxy-password-file", "/run/secrets/p"}, nil)
	if err := cfg.Validate(); err != nil {
		t.Errorf("a proxy off loopback with a login: %v", err)
	}
}

// Numbers that used to pass validation and panic later.
func TestTOMLOutOfRangeNumbers(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ text, want string }{
		{"[wireguard]\nmtu = -5\n", "wireguard.mtu: -5"},
		{"[forward]\nmax_udp_flows = -1\n", "forward.max_udp_flows: -1"},
		{"[forward]\nmax_pending_per_source = 0\n", "forward.max_pending_per_source: 0"},
	} {
		cfg, err := load(t, []string{"--config", writeFile(t, dir, "vpnfwd.toml", tt.text)}, nil)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.text, err, tt.want)
		}
	}
}

func TestNoTunnel(t *testing.T) {
	cfg := Defaults()
	err := cfg.LoadTunnel()
	if err == nil || !strings.Contains(err.Error(), "--wg-config") {
		t.Fatalf("error %v", err)
	}
	cfg.WireGuard.Config = "/nonexistent/wg0.conf"
	if err := cfg.LoadTunnel(); err == nil || !strings.Contains(err.Error(), "/nonexistent/wg0.conf") {
		t.Fatalf("error %v", err)
	}
}

func TestParseHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1": "127.0.0.1:0", "127.0.0.1:8080": "127.0.0.1:8080", ":9": "127.0.0.1:9",
		"[::1]:5": "::1:5", "::1": "::1:0", "svc": "svc:0",
	} {
		h, p, err := ParseHostPort(in)
		if got := fmt.Sprintf("%s:%d", h, p); err != nil || got != want {
			t.Errorf("%q: %s %v, want %s", in, got, err, want)
		}
	}
}

// The example in examples/ must stay a valid, complete configuration.
func TestExampleConfig(t *testing.T) {
	cfg, err := load(t, []string{"--config", "../examples/vpnfwd.toml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("unknown keys in the example: %v", cfg.Warnings)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Provider.Name != "protonvpn" || len(cfg.Publish) != 3 || cfg.Proxy.SOCKS5 != "127.0.0.1:1080" || len(cfg.KillSwitch.AllowLAN) != 1 {
		t.Errorf("%+v", cfg)
	}
}

// Each provider's keys are its own: one it does not declare is an error
// naming the ones it has, values are checked by kind, and a secret given
// on the command line or in TOML is held redacted.
func TestProviderOptions(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "vpnfwd.toml", "[provider]\nname = \"protonvpn\"\nregion = \"de\"\nlifetime = \"soon\"\n")
	cfg, err := load(t, []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `provider.lifetime: "soon" is not a duration`) {
		t.Errorf("validate: %v", err)
	}
	if !slices.Contains(cfg.Warnings, "provider.region: protonvpn takes no such option, ignored (its options: gateway, lifetime, ports_count)") {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
	cfg, err = load(t, []string{"--provider", "natpmp", "--gateway", "10.2.0.1", "--lifetime", "90"}, nil)
	if err != nil || cfg.Validate() != nil {
		t.Fatalf("%v %v", err, cfg.Validate())
	}
	if d, _ := cfg.Provider.Settings.Duration("lifetime"); d != 90*time.Second {
		t.Errorf("lifetime %s", d)
	}
	cfg, err = load(t, []string{"--provider", "pia", "--username", "p1234567", "--config", writeFile(t, dir, "pia.toml", "[provider]\ndip_token = \"DIPsecret\"\n")},
		map[string]string{"VPNFWD_PASSWORD": "hunter2"})
	if err != nil || cfg.Validate() != nil {
		t.Fatalf("%v %v", err, cfg.Validate())
	}
	shown := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg.Provider.Settings)
	if strings.Contains(shown, "hunter2") || strings.Contains(shown, "DIPsecret") || !strings.Contains(shown, "p1234567") {
		t.Errorf("secrets shown: %s", shown)
	}
	if pw, _ := cfg.Provider.Settings.Secret("password"); pw != "hunter2" {
		t.Errorf("password %q", pw)
	}
}

// use_proxy keeps peers out of the proxy (libtorrent would stop listening),
// so their outgoing connections must meet the kill switch.
func TestQBittorrentProxyNeedsKillSwitch(t *testing.T) {
	args := []string{"--provider", "natpmp", "--qbittorrent", "http://127.0.0.1:8080", "--qbittorrent-proxy"}
	cfg, err := load(t, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--killswitch") {
		t.Errorf("without the kill switch: %v", err)
	}
	cfg, err = load(t, append(args, "--killswitch"), nil)
	if err != nil || cfg.Validate() != nil {
		t.Errorf("with the kill switch: %v %v", err, cfg.Validate())
	}
}

// Tun mode turns the DNS forwarder on at 127.0.0.1:53 unless told
// otherwise; elsewhere it stays off.
func TestTunModeDNSDefault(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, ""},
		{[]string{"--tun", "vpnfwd0"}, nil, "127.0.0.1:53"},
		{nil, map[string]string{"VPNFWD_TUN": "vpnfwd0"}, "127.0.0.1:53"},
		{[]string{"--tun", "vpnfwd0", "--dns-listen", "127.0.0.1:5353"}, nil, "127.0.0.1:5353"},
		{[]string{"--tun", "vpnfwd0", "--dns-listen", "off"}, nil, ""},
		{[]string{"--dns-listen", "off"}, nil, ""},
	}
	for _, tt := range tests {
		cfg, err := load(t, tt.args, tt.env)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%v %v: %v", tt.args, tt.env, err)
		}
		if cfg.DNS.Listen != tt.want {
			t.Errorf("%v %v: dns.listen %q, want %q", tt.args, tt.env, cfg.DNS.Listen, tt.want)
		}
	}
}

// Several servers: --wg-config repeated, FILE,FILE, or a directory of
// *.conf (name order); the first is the one used, all are in Servers.
func TestServerList(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.conf", protonConf)
	b := writeFile(t, dir, "b.conf", strings.Replace(protonConf, "Endpoint = ", "Endpoint = 198.51.100.9:51820\n#", 1))
	sub := filepath.Join(dir, "servers")
	os.Mkdir(sub, 0o700)
	writeFile(t, sub, "2-second.conf", protonConf)
	writeFile(t, sub, "1-first.conf", protonConf)
	writeFile(t, sub, "notes.txt", "not a config")
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"repeated", []string{"--wg-config", a, "--wg-config", b}, nil, []string{a, b}},
		{"comma", []string{"--wg-config", a + "," + b}, nil, []string{a, b}},
		{"env", nil, map[string]string{"VPNFWD_WG_CONFIG": b + "," + a}, []string{b, a}},
		{"directory", []string{"--wg-config", sub}, nil, []string{filepath.Join(sub, "1-first.conf"), filepath.Join(sub, "2-second.conf")}},
	} {
		cfg, err := load(t, c.args, c.env)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := cfg.LoadTunnel(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got []string
		for _, s := range cfg.Servers {
			got = append(got, s.Config)
		}
		if !slices.Equal(got, c.want) || cfg.WireGuard.Config != c.want[0] {
			t.Errorf("%s: servers %v, using %s; want %v", c.name, got, cfg.WireGuard.Config, c.want)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	cfg, _ := load(t, []string{"--wg-config", empty}, nil)
	if err := cfg.LoadTunnel(); err == nil || !strings.Contains(err.Error(), "no *.conf") {
		t.Errorf("an empty directory: %v", err)
	}
	if _, err := load(t, []string{"--failover-after", "soon"}, nil); err == nil {
		t.Error("--failover-after soon accepted")
	}
	cfg, _ = load(t, []string{"--failover-after", "100ms"}, nil)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "failover") {
		t.Errorf("--failover-after 100ms: %v", err)
	}
}

// Files holding secrets that others can read are named with the fix; a
// FIFO or /dev/zero as a file is an error, not a hang or an exhausted memory.
func TestSecretFilesChecked(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "wg0.conf", "[Interface]\nPrivateKey = "+testPriv+"\nAddress = 10.2.0.2/32\n[Peer]\nPublicKey = "+testPub+"\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 0.0.0.0/0\n")
	os.Chmod(conf, 0o644)
	tok := writeFile(t, dir, "token", "t0ken")
	os.Chmod(tok, 0o640)
	cfg, err := load(t, []string{"--wg-config", conf, "--api-token-file", tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.LoadTunnel(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(cfg.Warnings, "\n")
	for _, want := range []string{"chmod 600 " + conf, "chmod 600 " + tok} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	for _, args := range [][]string{{"--config", "/dev/zero"}, {"--config", dir}} {
		if _, err := load(t, args, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%v: %v", args, err)
		}
	}
	cfg, _ = load(t, []string{"--wg-config", "/dev/zero"}, nil)
	if err := cfg.LoadTunnel(); err == nil || !strings.Contains(err.Error(), "/dev/zero is not a regular file") {
		t.Errorf("--wg-config /dev/zero: %v", err)
	}
}

func TestWGNameIsAFileNameOnly(t *testing.T) {
	for name, ok := range map[string]bool{"vpnfwd": true, "wg0": true, "-": true, "proton.nl-1": true, "../../x": false, "a/b": false, "..": false, "sixteen-chars-xx": false, "with space": false} {
		cfg, err := load(t, []string{"--wg-name", name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.Validate()
		if got := err == nil || !strings.Contains(err.Error(), "wireguard.name"); got != ok {
			t.Errorf("--wg-name %q: %v", name, err)
		}
	}
}
