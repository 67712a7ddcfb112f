package config

import (
	"flag"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// protonEnv is gluetun's ProtonVPN WireGuard example with the server
// given, as a map to change per case.
func protonEnv(kv ...string) map[string]string {
	m := map[string]string{
		"VPN_SERVICE_PROVIDER": "protonvpn", "VPN_TYPE": "wireguard", "WIREGUARD_PRIVATE_KEY": testPriv,
		"WIREGUARD_PUBLIC_KEY": testPub, "WIREGUARD_ENDPOINT_IP": "192.0.2.10", "VPN_PORT_FORWARDING": "on",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "-" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

// gluetun's current variables, read as gluetun 3.39+ reads them
// (internal/configuration/settings and qdm12/gosettings in its source):
// quotes, its booleans, its older names, its defaults and bounds.
func TestGluetunCurrentVariables(t *testing.T) {
	for _, c := range []struct {
		name  string
		env   map[string]string
		check func(*Config) bool
	}{
		{"quoted values", protonEnv("VPN_SERVICE_PROVIDER", `"protonvpn"`, "VPN_PORT_FORWARDING", `'on'`, "WIREGUARD_ENDPOINT_IP", ` "192.0.2.10" `),
			func(c *Config) bool {
				return c.Provider.Name == "protonvpn" && endpointIs(c.WireGuard.Peers[0].Endpoint, "192.0.2.10", 51820)
			}},
		{"the firewall off by its current name", protonEnv("FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT", "off"),
			func(c *Config) bool { return !c.KillSwitch.Enabled }},
		{"the firewall by its older name", protonEnv("FIREWALL", "disabled"),
			func(c *Config) bool { return !c.KillSwitch.Enabled }},
		{"enabled/disabled booleans", protonEnv("FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT", "enabled", "VPN_PORT_FORWARDING", "enabled"),
			func(c *Config) bool { return c.KillSwitch.Enabled }},
		{"VPN_INTERFACE is wg0 under WireGuard", protonEnv(),
			func(c *Config) bool { return c.WireGuard.Tun == "wg0" }},
		{"VPN_INTERFACE given", protonEnv("VPN_INTERFACE", "tun7"),
			func(c *Config) bool { return c.WireGuard.Tun == "tun7" }},
		{"listening ports, the list", protonEnv("VPN_PORT_FORWARDING_LISTENING_PORTS", "6881"),
			func(c *Config) bool { return c.Forward.Target == "0.0.0.0:6881" }},
		{"listening port, the older name", protonEnv("VPN_PORT_FORWARDING_LISTENING_PORT", "6882"),
			func(c *Config) bool { return c.Forward.Target == "0.0.0.0:6882" }},
		{"listening ports 0 (gluetun's image default)", protonEnv("VPN_PORT_FORWARDING_LISTENING_PORTS", "0"),
			func(c *Config) bool { return !strings.HasPrefix(c.Forward.Target, "0.0.0.0:") }},
		{"older names of port forwarding and its file", protonEnv("VPN_PORT_FORWARDING", "-", "PORT_FORWARDING", "on", "PORT_FORWARDING_STATUS_FILE", "/run/old_port"),
			func(c *Config) bool {
				return slices.ContainsFunc(c.Publish, func(p Publish) bool { return p.Type == "file" && p.Path == "/run/old_port" })
			}},
		{"WIREGUARD_ADDRESS, the older name", protonEnv("WIREGUARD_ADDRESS", "10.2.0.9/32"),
			func(c *Config) bool {
				return len(c.WireGuard.Address) == 1 && c.WireGuard.Address[0].String() == "10.2.0.9/32"
			}},
		{"Proton's ports count up to 4", protonEnv("VPN_PORT_FORWARDING_PORTS_COUNT", "4"),
			func(c *Config) bool { return c.Provider.Settings.String("ports_count") == "4" }},
		{"PIA's account from USER and PASSWORD", map[string]string{"VPN_SERVICE_PROVIDER": "private internet access", "USER": "p7654321", "PASSWORD": "pw", "VPN_PORT_FORWARDING": "on"},
			func(c *Config) bool {
				return c.Provider.Settings.String("username") == "p7654321" && c.WireGuard.Tun == "tun0"
			}},
		{"PIA's port forwarding account before OpenVPN's", map[string]string{"VPN_SERVICE_PROVIDER": "private internet access", "OPENVPN_USER": "p1", "OPENVPN_PASSWORD": "a",
			"VPN_PORT_FORWARDING_USERNAME": "p2", "VPN_PORT_FORWARDING_PASSWORD": "b", "VPN_PORT_FORWARDING": "on"},
			func(c *Config) bool { return c.Provider.Settings.String("username") == "p2" }},
	} {
		cfg, err := load(t, []string{"up"}, c.env)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.check(cfg) {
			t.Errorf("%s: tun %q forward %+v killswitch %+v provider %+v publish %+v", c.name, cfg.WireGuard.Tun, cfg.Forward, cfg.KillSwitch, cfg.Provider.Name, cfg.Publish)
		}
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{protonEnv("VPN_PORT_FORWARDING_PORTS_COUNT", "5"), "VPN_PORT_FORWARDING_PORTS_COUNT=\"5\": want 1 to 4 for protonvpn"},
		{protonEnv("VPN_SERVICE_PROVIDER", "custom", "VPN_PORT_FORWARDING_PORTS_COUNT", "2", "WIREGUARD_ADDRESSES", "10.64.0.2/32"), "want 1 to 1 for natpmp"},
		{protonEnv("VPN_PORT_FORWARDING_LISTENING_PORTS", "6881,6882"), "vpnfwd redirects the forwarded port to one port"},
		{protonEnv("VPN_PORT_FORWARDING_LISTENING_PORTS", "x"), "want a port from 1 to 65535"},
		{protonEnv("FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT", "maybe"), "want on or off (also yes/no, true/false, enabled/disabled)"},
	} {
		_, err := load(t, []string{"up"}, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v:\n got %v\nwant %q", c.env, err, c.want)
		}
	}
	// The older names and the ignored ones are named in the log.
	cfg, err := load(t, []string{"up"}, protonEnv("VPN_PORT_FORWARDING", "-", "PORT_FORWARDING", "on",
		"HTTP_CONTROL_SERVER_LOG", "on", "HEALTH_TARGET_ADDRESSES", "cloudflare.com:443", "DNS_SERVER", "on"))
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(cfg.Notes, "\n")
	for _, want := range []string{"PORT_FORWARDING → VPN_PORT_FORWARDING", "HTTP_CONTROL_SERVER_LOG (", "HEALTH_TARGET_ADDRESSES (", "DNS_SERVER ("} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

// Every variable applyGluetun reads is in the table docs/gluetun.md is
// made from (or is ignored, or a server filter), and docs/gluetun.md
// holds the table as the code makes it.
func TestGluetunTable(t *testing.T) {
	asked := map[string]bool{}
	env := protonEnv("HTTPPROXY", "on", "HTTPPROXY_LISTENING_ADDRESS", "127.0.0.1:8888")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := RegisterFlags(fs, testProviders).Load(func(k string) (string, bool) { asked[k] = true; v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, v := range gluetunVars {
		known[v.Name] = true
		for _, r := range v.Retro {
			known[r] = true
		}
	}
	for k := range gluetunIgnored {
		known[k] = true
	}
	for k := range asked {
		if strings.HasPrefix(k, "VPNFWD_") || known[k] {
			continue
		}
		t.Errorf("%s is read but not in gluetunVars (docs/gluetun.md's table)", k)
	}
	doc, err := os.ReadFile("../docs/gluetun.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), GluetunMarkdown()) {
		t.Errorf("docs/gluetun.md's table of variables is not the code's: run `go run ./cmd/vpnfwd options --gluetun` and paste it in")
	}
}
