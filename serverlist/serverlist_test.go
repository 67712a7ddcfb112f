package serverlist

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A list in gluetun's shape (its servers.json: Proton's entries as gluetun
// writes them, trimmed to the fields that differ), made for the tests.
const protonServers = `[
 {"vpn":"wireguard","country":"Netherlands","city":"Amsterdam","server_name":"NL#1","hostname":"nl-01.protonvpn.net","wgpubkey":"AAAA","ips":["192.0.2.1"],"port_forward":true},
 {"vpn":"wireguard","country":"Netherlands","city":"Amsterdam","server_name":"NL-FREE#2","hostname":"nl-free-02.protonvpn.net","wgpubkey":"BBBB","ips":["192.0.2.2"],"free":true},
 {"vpn":"wireguard","country":"Switzerland","region":"Europe","city":"Zurich","server_name":"CH#3","hostname":"ch-03.protonvpn.net","wgpubkey":"CCCC","ips":["192.0.2.3"],"port_forward":true,"secure_core":true},
 {"vpn":"openvpn","country":"Netherlands","city":"Amsterdam","hostname":"nl-01.protonvpn.net","ips":["192.0.2.1"],"udp":true},
 {"vpn":"wireguard","country":"Iceland","city":"Reykjavik","server_name":"IS#4","hostname":"is-04.protonvpn.net","wgpubkey":"DDDD","ips":["192.0.2.4"],"tor":true,"stream":true,"port_forward":true}
]`

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Both layouts gluetun writes: the one file (3.x) and the manifest naming
// a provider's own file (newer code); OpenVPN entries are left out.
func TestReadBothLayouts(t *testing.T) {
	dir := t.TempDir()
	fat := write(t, dir, "servers.json", `{"version":1,"protonvpn":{"version":4,"timestamp":1,"servers":`+protonServers+`},"mullvad":{"version":1,"servers":[]}}`)
	os.MkdirAll(filepath.Join(dir, "servers"), 0o755)
	write(t, dir, "servers/protonvpn.json", `{"version":4,"timestamp":1,"servers":`+protonServers+`}`)
	manifest := write(t, dir, "manifest.json", `{"version":1,"protonvpn":{"version":4,"timestamp":1,"filepath":"`+filepath.Join(dir, "servers", "protonvpn.json")+`"}}`)
	relative := write(t, dir, "relative.json", `{"protonvpn":{"version":4,"filepath":"servers/protonvpn.json"}}`)
	for _, path := range []string{fat, manifest, relative} {
		s, err := Read(path, "protonvpn")
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(s) != 4 || s[0].Hostname != "nl-01.protonvpn.net" || s[0].IPs[0].String() != "192.0.2.1" || !s[0].PortForward {
			t.Errorf("%s: %+v", path, s)
		}
	}
	for _, c := range []struct{ path, provider, want string }{
		{filepath.Join(dir, "none.json"), "protonvpn", "mount gluetun's volume"},
		{fat, "private internet access", `no servers for "private internet access" (it has: mullvad, protonvpn)`},
		{write(t, dir, "bad.json", `[1,2]`), "protonvpn", "is not a gluetun server list"},
		{write(t, dir, "ovpn.json", `{"protonvpn":{"servers":[{"vpn":"openvpn","ips":["192.0.2.9"]}]}}`), "protonvpn", "1 servers for protonvpn and none is a WireGuard server"},
		{write(t, dir, "gone.json", `{"protonvpn":{"filepath":"/nonexistent/protonvpn.json"}}`), "protonvpn", "names /nonexistent/protonvpn.json"},
		{dir, "protonvpn", "not a regular file"},
	} {
		if _, err := Read(c.path, c.provider); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want %q", c.path, c.provider, err, c.want)
		}
	}
}

// Each filter as gluetun's: lists match a field case-insensitively, the
// *_only flags keep servers with the feature, filters combine.
func TestSelect(t *testing.T) {
	dir := t.TempDir()
	all, err := Read(write(t, dir, "s.json", `{"protonvpn":{"servers":`+protonServers+`}}`), "protonvpn")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "NL#1 NL-FREE#2 CH#3 IS#4"},
		{Filter{Countries: []string{"netherlands"}}, "NL#1 NL-FREE#2"},
		{Filter{Countries: []string{"Netherlands"}, PortForwardOnly: true}, "NL#1"},
		{Filter{Countries: []string{"Iceland", " switzerland"}}, "CH#3 IS#4"},
		{Filter{Regions: []string{"europe"}}, "CH#3"},
		{Filter{Cities: []string{"AMSTERDAM"}, FreeOnly: true}, "NL-FREE#2"},
		{Filter{Hostnames: []string{"is-04.protonvpn.net"}}, "IS#4"},
		{Filter{Names: []string{"ch#3"}}, "CH#3"},
		{Filter{SecureCoreOnly: true}, "CH#3"},
		{Filter{TorOnly: true}, "IS#4"},
		{Filter{StreamOnly: true, PortForwardOnly: true}, "IS#4"},
	} {
		got, err := Select(all, c.f)
		var names []string
		for _, s := range got {
			names = append(names, s.ServerName)
		}
		if err != nil || strings.Join(names, " ") != c.want {
			t.Errorf("%s: %v %v, want %s", c.f, names, err, c.want)
		}
	}
	_, err = Select(all, Filter{Countries: []string{"Narnia"}, PortForwardOnly: true})
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "SERVER_COUNTRIES=Narnia PORT_FORWARD_ONLY=on among 4 WireGuard servers; its countries: Iceland, Netherlands, Switzerland") {
		t.Errorf("no match: %v", err)
	}
	if n := all[2].Name(); n != "ch-03.protonvpn.net (Zurich)" {
		t.Errorf("name %q", n)
	}
}
