package config

import (
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

// gluetun's documented WireGuard examples (its wiki: providers/protonvpn,
// providers/custom, providers/private-internet-access) with the port
// forwarding options from setup/advanced/vpn-port-forwarding; the keys are
// wgquick_test.go's.

func TestGluetunEnvironment(t *testing.T) {
	env := map[string]string{
		"VPN_SERVICE_PROVIDER":                  "protonvpn",
		"VPN_TYPE":                              "wireguard",
		"WIREGUARD_PRIVATE_KEY":                 testPriv,
		"WIREGUARD_ADDRESSES":                   "10.2.0.2/32",
		"WIREGUARD_PUBLIC_KEY":                  testPub,
		"WIREGUARD_ENDPOINT_IP":                 "192.0.2.10",
		"VPN_PORT_FORWARDING":                   "on",
		"VPN_PORT_FORWARDING_PORTS_COUNT":       "3",
		"VPN_PORT_FORWARDING_UP_COMMAND":        `/bin/sh -c 'echo {{PORTS}} {{VPN_INTERFACE}}'`,
		"VPN_PORT_FORWARDING_DOWN_COMMAND":      `/bin/sh -c 'echo down {{PORT}}'`,
		"FIREWALL_OUTBOUND_SUBNETS":             "192.168.1.0/24",
		"HTTP_CONTROL_SERVER_ADDRESS":           ":8000",
		"HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE": `{"auth":"apikey","apikey":"k"}`,
		"DOT":                                   "off",
		"TZ":                                    "Europe/Paris",
	}
	c, err := load(t, []string{"up"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadTunnel(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := c.WireGuard
	if c.Provider.Name != "protonvpn" || w.Tun != "wg0" || len(w.Peers) != 1 || !endpointIs(w.Peers[0].Endpoint, "192.0.2.10", 51820) ||
		w.Peers[0].PublicKey.String() != testPub || len(w.Peers[0].AllowedIPs) != 2 || w.DNS[0].String() != "10.2.0.1" {
		t.Errorf("tunnel: provider %q %+v", c.Provider.Name, w)
	}
	if c.Provider.Settings.String("ports_count") != "3" {
		t.Errorf("ports_count %q", c.Provider.Settings.String("ports_count"))
	}
	if !c.KillSwitch.Enabled || !c.KillSwitch.AllowLocalSubnets || strings.Join(c.KillSwitch.AllowLAN, ",") != "192.168.1.0/24" {
		t.Errorf("kill switch %+v", c.KillSwitch)
	}
	if c.DNS.Listen != "127.0.0.1:53" || !c.DNS.ResolvConf || c.API.Listen != "0.0.0.0:8000" || c.Proxy.SOCKS5 != "" || c.Proxy.HTTP != "" {
		t.Errorf("dns %+v api %+v proxy %+v", c.DNS, c.API, c.Proxy)
	}
	var file, up, down string
	for _, p := range c.Publish {
		switch {
		case p.Type == "file":
			file = p.Path
		case p.Type == "exec" && p.On == "lost":
			down = p.Command
		case p.Type == "exec":
			up = p.Command
		}
	}
	if file != "/tmp/gluetun/forwarded_port" || !strings.Contains(up, "{{PORTS}}") || !strings.Contains(down, "down {{PORT}}") {
		t.Errorf("publish %+v", c.Publish)
	}
	notes := strings.Join(c.Notes, "\n")
	for _, want := range []string{"gluetun environment read", "tun mode on wg0", "DOT (", "TZ ("} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, testPriv) {
		t.Error("the private key is in the notes")
	}
	// vpnfwd's own variables override gluetun's.
	env["VPNFWD_PORT_FILE"] = "/run/port"
	env["VPNFWD_KILLSWITCH"] = "false"
	c, err = load(t, []string{"up"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.KillSwitch.Enabled {
		t.Error("VPNFWD_KILLSWITCH=false did not override FIREWALL's default")
	}
}

func TestGluetunEnvironmentErrors(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{base("VPN_SERVICE_PROVIDER", "protonvpn", "OPENVPN_USER", "u"), "vpnfwd runs WireGuard only"},
		{base("VPN_SERVICE_PROVIDER", "mullvad", "VPN_TYPE", "wireguard"), `VPN_SERVICE_PROVIDER="mullvad": vpnfwd has no port forwarding for it`},
		{base("VPN_SERVICE_PROVIDER", "protonvpn", "VPN_TYPE", "wireguard", "WIREGUARD_PRIVATE_KEY", "nope"), "WIREGUARD_PRIVATE_KEY"},
		{base("VPN_SERVICE_PROVIDER", "custom", "VPN_TYPE", "wireguard", "WIREGUARD_PRIVATE_KEY", testPriv, "WIREGUARD_ADDRESSES", "10.64.0.2/32",
			"WIREGUARD_PUBLIC_KEY", testPub, "VPN_ENDPOINT_IP", "192.0.2.1", "SHADOWSOCKS", "on"), "no Shadowsocks server"},
		{base("VPN_SERVICE_PROVIDER", "custom", "VPN_TYPE", "wireguard", "VPN_PORT_FORWARDING", "maybe"), `VPN_PORT_FORWARDING="maybe": want on or off`},
	} {
		_, err := load(t, []string{"up"}, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v:\n got %v\nwant %q", c.env, err, c.want)
		}
	}
}

// PIA in gluetun runs over OpenVPN; vpnfwd makes PIA's WireGuard tunnel with
// the same account and takes the region by its name.
func TestGluetunPIA(t *testing.T) {
	c, err := load(t, []string{"up"}, map[string]string{
		"VPN_SERVICE_PROVIDER": "private internet access", "OPENVPN_USER": "p1234567", "OPENVPN_PASSWORD": "hunter2",
		"SERVER_REGIONS": "CA Toronto,CA Montreal", "VPN_PORT_FORWARDING": "on",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Provider.Name != "pia" || c.Provider.Settings.String("username") != "p1234567" || c.Provider.Settings.String("region") != "CA Toronto" {
		t.Errorf("provider %+v", c.Provider)
	}
	if strings.Contains(strings.Join(c.Notes, " "), "hunter2") {
		t.Error("the password is in the notes")
	}
}

func endpointIs(e tunnel.Endpoint, host string, port uint16) bool {
	h, p := e.HostPort()
	return h == host && p == port
}
