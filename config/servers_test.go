package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testServerList writes a server list in gluetun's shape (Proton-shaped
// entries; the keys are wgquick_test.go's) and returns its path.
func testServerList(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "servers.json")
	os.WriteFile(p, []byte(`{"version":1,"protonvpn":{"version":4,"timestamp":1,"servers":[
 {"vpn":"wireguard","country":"Netherlands","city":"Amsterdam","server_name":"NL#1","hostname":"nl-01.protonvpn.net","wgpubkey":"`+testPub+`","ips":["192.0.2.1"],"port_forward":true},
 {"vpn":"wireguard","country":"Netherlands","city":"Rotterdam","server_name":"NL#2","hostname":"nl-02.protonvpn.net","wgpubkey":"`+testPub+`","ips":["192.0.2.2"],"port_forward":true},
 {"vpn":"wireguard","country":"Netherlands","city":"Amsterdam","server_name":"NL-FREE#3","hostname":"nl-free-03.protonvpn.net","wgpubkey":"`+testPub+`","ips":["192.0.2.3"],"free":true},
 {"vpn":"wireguard","country":"Switzerland","city":"Zurich","server_name":"CH#4","hostname":"ch-04.protonvpn.net","wgpubkey":"`+testPub+`","ips":["192.0.2.4"],"port_forward":true}
]}}`), 0o644)
	return p
}

// gluetun's Proton compose file names only SERVER_COUNTRIES: vpnfwd picks
// from the list in the volume, port-forwarding servers only (gluetun's
// default with port forwarding on), and the matching servers are the
// failover list, starting anywhere and going round.
func TestGluetunServerList(t *testing.T) {
	list := testServerList(t)
	defer func(f func(int) int) { pickFirst = f }(pickFirst)
	pickFirst = func(int) int { return 1 }
	env := map[string]string{"VPN_SERVICE_PROVIDER": "protonvpn", "VPN_TYPE": "wireguard", "WIREGUARD_PRIVATE_KEY": testPriv,
		"SERVER_COUNTRIES": "netherlands", "VPN_PORT_FORWARDING": "on", "STORAGE_FILEPATH": list}
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
	if len(c.Servers) != 2 || c.Servers[0].Server != "nl-02.protonvpn.net (Rotterdam)" || c.Servers[1].Server != "nl-01.protonvpn.net (Amsterdam)" ||
		!endpointIs(c.WireGuard.Peers[0].Endpoint, "192.0.2.2", 51820) || c.WireGuard.Address[0].String() != "10.2.0.2/32" ||
		c.WireGuard.PrivateKey.IsZero() || c.Servers[1].PrivateKey != c.Servers[0].PrivateKey {
		t.Fatalf("servers %+v", c.Servers)
	}
	if notes := strings.Join(c.Notes, "\n"); !strings.Contains(notes, "2 of 4 WireGuard servers match SERVER_COUNTRIES=netherlands PORT_FORWARD_ONLY=on; starting on nl-02.protonvpn.net (Rotterdam)") {
		t.Errorf("notes:\n%s", notes)
	}
	// Each filter reaches the selection; errors say what to do.
	for _, c := range []struct {
		kv   []string
		want string // a server, or an error
	}{
		{[]string{"SERVER_CITIES", "Zurich", "SERVER_COUNTRIES", ""}, "ch-04"},
		{[]string{"SERVER_HOSTNAMES", "nl-01.protonvpn.net"}, "nl-01"},
		{[]string{"SERVER_NAMES", "NL#2"}, "nl-02"},
		{[]string{"PORT_FORWARD_ONLY", "off", "FREE_ONLY", "on"}, "nl-free-03"},
		{[]string{"WIREGUARD_ENDPOINT_PORT", "443", "SERVER_NAMES", "NL#1"}, "192.0.2.1:443"},
		{[]string{"SERVER_COUNTRIES", "Narnia"}, "no server matches SERVER_COUNTRIES=Narnia PORT_FORWARD_ONLY=on among 4 WireGuard servers; its countries: Netherlands, Switzerland"},
		{[]string{"FREE_ONLY", "on"}, "no server matches SERVER_COUNTRIES=netherlands PORT_FORWARD_ONLY=on FREE_ONLY=on"},
		{[]string{"STORAGE_FILEPATH", filepath.Join(t.TempDir(), "none.json")}, "mount gluetun's volume at /gluetun"},
	} {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		for i := 0; i+1 < len(c.kv); i += 2 {
			e[c.kv[i]] = c.kv[i+1]
		}
		cfg, err := load(t, []string{"up"}, e)
		if err == nil {
			err = cfg.LoadTunnel()
		}
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			h, p := cfg.WireGuard.Peers[0].Endpoint.HostPort()
			got = fmt.Sprintf("%s %s:%d", cfg.WireGuard.Server, h, p)
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.kv, got, c.want)
		}
	}
}

// Outside gluetun: --server-list and the --server-* flags (or [servers]
// in TOML) with the key and addresses inline.
func TestServerListNative(t *testing.T) {
	list := testServerList(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "vpnfwd.toml", `
[wireguard]
private_key = "`+testPriv+`"
address = ["10.2.0.2/32"]
[provider]
name = "protonvpn"
[servers]
list = "`+list+`"
countries = ["Switzerland"]
`)
	c, err := load(t, []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadTunnel(); err != nil || len(c.Servers) != 1 || c.WireGuard.Server != "ch-04.protonvpn.net (Zurich)" {
		t.Fatalf("%v %+v", err, c.Servers)
	}
	c, err = load(t, []string{"--config", file, "--server-countries", "Netherlands", "--server-cities", "Amsterdam", "--port-forward-only=false"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadTunnel(); err != nil || len(c.Servers) != 2 {
		t.Fatalf("%v %+v", err, c.Servers)
	}
	c, err = load(t, []string{"--config", file, "--wg-config", filepath.Join(dir, "x.conf")}, nil)
	if err == nil {
		err = c.LoadTunnel()
	}
	if err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("a wg-quick file and a list: %v", err)
	}
}
