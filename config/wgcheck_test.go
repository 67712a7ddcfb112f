package config

import (
	"strings"
	"testing"
)

// Values that parse but cannot be what they stand for are refused with
// the file's line, the value and what to give; the same tunnel given
// inline (TOML, gluetun's variables) is checked the same.
func TestWGQuickImpossibleValues(t *testing.T) {
	good := "[Interface]\nPrivateKey = " + testPriv + "\nAddress = 10.2.0.2/32\nDNS = 10.2.0.1\n[Peer]\nPublicKey = " + testPub + "\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 0.0.0.0/0\n"
	if _, _, err := ParseWGQuick("wg0.conf", strings.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"Endpoint = 192.0.2.1:51820", "Endpoint = 0.0.0.0:51820", "wg0.conf:7: Endpoint: 0.0.0.0:51820: 0.0.0.0 is the unspecified address"},
		{"Endpoint = 192.0.2.1:51820", "Endpoint = 255.255.255.255:51820", "255.255.255.255 is the broadcast address"},
		{"Endpoint = 192.0.2.1:51820", "Endpoint = 224.0.0.9:51820", "224.0.0.9 is a multicast address"},
		{"Address = 10.2.0.2/32", "Address = 0.0.0.0/32", "wg0.conf:3: Address: 0.0.0.0/32: 0.0.0.0 is the unspecified address, not your address in the tunnel"},
		{"Address = 10.2.0.2/32", "Address = 127.0.0.1/32", "127.0.0.1 is a loopback address"},
		{"Address = 10.2.0.2/32", "Address = ff02::1/128", "ff02::1 is a multicast address"},
		{"Address = 10.2.0.2/32", "Address = 10.2.0.2/0", "10.2.0.2/0: a /0 claims every address"},
		{"DNS = 10.2.0.1", "DNS = 0.0.0.0", "wg0.conf:4: DNS: 0.0.0.0 is the unspecified address, not a DNS server in the tunnel"},
		{"DNS = 10.2.0.1", "DNS = 10.2.0.1, 127.0.0.1", "127.0.0.1 is a loopback address"},
		{"DNS = 10.2.0.1", "DNS = 10.2.0.1=5", `"10.2.0.1=5" is neither a DNS server's address nor a search domain`},
		{"DNS = 10.2.0.1", "DNS = 10.2.0.300", `"10.2.0.300" is neither`},
		{"AllowedIPs = 0.0.0.0/0\n", "AllowedIPs = 0.0.0.0/0\n[Peer]\nPublicKey = " + testPub + "\n", "wg0.conf:10: PublicKey: " + testPub + " is also the key of [Peer] 1"},
	} {
		_, _, err := ParseWGQuick("wg0.conf", strings.NewReader(strings.Replace(good, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.to, err, c.want)
		}
	}
	// Search domains are still skipped.
	w, _, err := ParseWGQuick("wg0.conf", strings.NewReader(strings.Replace(good, "DNS = 10.2.0.1", "DNS = 10.2.0.1, corp.example, lan", 1)))
	if err != nil || len(w.DNS) != 1 {
		t.Errorf("search domains: %v %v", w.DNS, err)
	}

	// The same values inline.
	for _, c := range []struct{ text, want string }{
		{"[wireguard]\nprivate_key = \"" + testPriv + "\"\naddress = [\"127.0.0.2/32\"]\n[[wireguard.peer]]\npublic_key = \"" + testPub + "\"\nendpoint = \"192.0.2.1:51820\"\nallowed_ips = [\"0.0.0.0/0\"]\n", "127.0.0.2 is a loopback address"},
		{"[wireguard]\nprivate_key = \"" + testPriv + "\"\naddress = [\"10.2.0.2/32\"]\ndns = [\"0.0.0.0\"]\n[[wireguard.peer]]\npublic_key = \"" + testPub + "\"\nendpoint = \"192.0.2.1:51820\"\nallowed_ips = [\"0.0.0.0/0\"]\n", "dns 0.0.0.0 is the unspecified address"},
		{"[wireguard]\nprivate_key = \"" + testPriv + "\"\naddress = [\"10.2.0.2/32\"]\n[[wireguard.peer]]\npublic_key = \"" + testPub + "\"\nendpoint = \"0.0.0.0:51820\"\nallowed_ips = [\"0.0.0.0/0\"]\n" +
			"[[wireguard.peer]]\npublic_key = \"" + testPub + "\"\nendpoint = \"192.0.2.1:51820\"\nallowed_ips = [\"10.0.0.0/8\"]\n", "peer 2 has peer 1's public key"},
	} {
		cfg, err := load(t, []string{"--config", writeFile(t, t.TempDir(), "vpnfwd.toml", c.text)}, nil)
		if err == nil {
			err = cfg.LoadTunnel()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("inline: %v, want %q", err, c.want)
		}
	}
}

func TestNamesAndPaths(t *testing.T) {
	for s, want := range map[string]bool{
		"db": true, "db.example": true, "xn--bcher-kva.example.": true, "_srv.example": true, "10.2.0.1": false,
		"db host": false, "10.2.0.1=5": false, "-db": false, "": false, "a..b": false, strings.Repeat("a", 64): false,
	} {
		if isDomain(s) != want {
			t.Errorf("isDomain(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{
		"vpnfwd": true, "vpnfwd-2": true, "_x.y": true, "": false, "my table": false, "2nd": false, "-x": false,
		strings.Repeat("t", 64): true, strings.Repeat("t", 300): false, "a;b": false,
	} {
		if validTableName(s) != want {
			t.Errorf("validTableName(%q) = %v", s, !want)
		}
	}
	dir := t.TempDir()
	file := writeFile(t, dir, "f", "")
	for d, want := range map[string]string{
		dir: "", dir + "/new/state": "", "/proc": "on proc", "/proc/vpnfwd": "/proc is on proc", "/sys/fs/x": "on sysfs",
		file: "is not a directory", file + "/x": "is not a directory",
	} {
		got := checkStateDir(d)
		if (want == "") != (got == "") || !strings.Contains(got, want) || (got != "" && !strings.HasPrefix(got, d)) {
			t.Errorf("checkStateDir(%s) = %q, want %q", d, got, want)
		}
	}
}
