package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

const (
	testPriv = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
	testPub  = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
)

const protonConf = `# Key for: vpnfwd-test
# Bouncing = 3
# NetShield = 1
# Moderate NAT = off
# NAT-PMP (Port Forwarding) = on
# VPN Accelerator = on
[Interface]
PrivateKey = ` + testPriv + `
Address = 10.2.0.2/32
DNS = 10.2.0.1

[Peer]
# NL-FREE#1
PublicKey = ` + testPub + `
AllowedIPs = 0.0.0.0/0
Endpoint = 185.107.56.1:51820
`

func TestParseWGQuickProton(t *testing.T) {
	wg, warns, err := ParseWGQuick("proton.conf", strings.NewReader(protonConf))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if got := wg.PrivateKey.Base64(); got != testPriv {
		t.Errorf("private key %s", got)
	}
	if got := wg.Address[0].String(); got != "10.2.0.2/32" {
		t.Errorf("address %s", got)
	}
	if got := wg.DNS[0].String(); got != "10.2.0.1" {
		t.Errorf("dns %s", got)
	}
	p := wg.Peers[0]
	if p.PublicKey.String() != testPub || p.Endpoint != "185.107.56.1:51820" || p.AllowedIPs[0].String() != "0.0.0.0/0" {
		t.Errorf("peer %+v", p)
	}
}

// Files saved by Windows Notepad start with a UTF-8 byte order mark.
func TestParseWGQuickBOM(t *testing.T) {
	wg, _, err := ParseWGQuick("bom.conf", strings.NewReader("\uFEFF"+protonConf))
	if err != nil {
		t.Fatal(err)
	}
	if len(wg.Peers) != 1 || len(wg.Address) != 1 {
		t.Errorf("parsed %+v", wg)
	}
}

func TestParseWGQuickFull(t *testing.T) {
	conf := `[Interface]
PrivateKey=` + testPriv + `
Address = 10.2.0.2/32, fd00:2::2/128 ,10.3.0.2
DNS = 10.2.0.1, fd00:2::1, example.internal
MTU = 1380
ListenPort = 51000
PostUp = iptables -A FORWARD -j ACCEPT
PreDown = rm -rf /
Table = off
SaveConfig = true

[peer]
PublicKey = ` + testPub + `
PresharedKey = ` + testPriv + `
Endpoint = [2001:db8::1]:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
`
	wg, warns, err := ParseWGQuick("full.conf", strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	if len(wg.Address) != 3 || wg.Address[2].String() != "10.3.0.2/32" || wg.Address[1].String() != "fd00:2::2/128" {
		t.Errorf("addresses %v", wg.Address)
	}
	if len(wg.DNS) != 2 {
		t.Errorf("dns %v", wg.DNS)
	}
	if wg.MTU != 1380 || wg.ListenPort != 51000 {
		t.Errorf("mtu %d port %d", wg.MTU, wg.ListenPort)
	}
	p := wg.Peers[0]
	if p.PersistentKeepalive != 25 || p.PresharedKey.IsZero() || len(p.AllowedIPs) != 2 {
		t.Errorf("peer %+v", p)
	}
	if len(warns) != 4 {
		t.Fatalf("want 4 warnings (PostUp, PreDown, Table, SaveConfig), got %q", warns)
	}
	if !strings.Contains(warns[0], "full.conf:7: PostUp") || !strings.Contains(warns[0], "never runs") {
		t.Errorf("warning %q", warns[0])
	}
}

func TestParseWGQuickErrors(t *testing.T) {
	base := func(iface, peer string) string {
		return "[Interface]\nPrivateKey = " + testPriv + "\nAddress = 10.2.0.2/32\n" + iface +
			"\n[Peer]\nPublicKey = " + testPub + "\nAllowedIPs = 0.0.0.0/0\nEndpoint = 1.2.3.4:51820\n" + peer
	}
	tests := []struct {
		name, conf, want string
	}{
		{"short key", strings.Replace(base("", ""), testPriv, "c2hvcnQ=", 1), "bad.conf:2: PrivateKey: not a WireGuard key: want 32 bytes of base64, got 5 bytes"},
		{"not base64", strings.Replace(base("", ""), testPub, "!!!!", 1), "bad.conf:6: PublicKey: not a WireGuard key: not valid base64"},
		{"bad cidr", base("", "AllowedIPs = 10.0.0.0/33\n"), "bad.conf:9: AllowedIPs: \"10.0.0.0/33\" is not a valid CIDR"},
		{"bad address", strings.Replace(base("", ""), "10.2.0.2/32", "10.2.0.300", 1), "bad.conf:3: Address: \"10.2.0.300\" is not an IP address or CIDR"},
		{"endpoint no port", base("", "Endpoint = vpn.example.com\n"), "bad.conf:9: Endpoint: endpoint \"vpn.example.com\": want host:port"},
		{"endpoint port 0", base("", "Endpoint = vpn.example.com:0\n"), "port must be 1-65535"},
		{"no peer", "[Interface]\nPrivateKey = " + testPriv + "\nAddress = 10.2.0.2/32\n", "bad.conf: no [Peer] section"},
		{"no key", "[Interface]\nAddress = 10.2.0.2/32\n[Peer]\nPublicKey = " + testPub + "\nAllowedIPs = 0.0.0.0/0\nEndpoint = 1.2.3.4:5\n", "no PrivateKey"},
		{"no endpoint", "[Interface]\nPrivateKey = " + testPriv + "\nAddress = 10.2.0.2/32\n[Peer]\nPublicKey = " + testPub + "\nAllowedIPs = 0.0.0.0/0\n", "peer 1: no Endpoint"},
		{"no section", "PrivateKey = x\n", "bad.conf:1: PrivateKey outside a section"},
		{"junk line", base("what is this", ""), "bad.conf:4: want Key = Value"},
		{"bad mtu", base("MTU = 9", ""), "bad.conf:4: MTU: \"9\": want a number from 576 to 65535"},
		{"unknown section", "[Wat]\n", `bad.conf:1: unknown section "[Wat]"`},
		{"two interfaces", "[Interface]\n[Interface]\n", "bad.conf:2: a second [Interface] section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseWGQuick("bad.conf", strings.NewReader(tt.conf))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
			var le *LineError
			if !errors.As(err, &le) || le.File != "bad.conf" {
				t.Errorf("error does not name the file: %#v", err)
			}
			if strings.Contains(err.Error(), testPriv) {
				t.Errorf("error leaks the private key")
			}
		})
	}
}

func TestPrivateKeyRedacted(t *testing.T) {
	k, _ := tunnel.ParsePrivateKey(testPriv)
	for _, s := range []string{k.String(), fmtV(k), fmtV(tunnel.WireGuard{PrivateKey: k}), fmtV(tunnel.Peer{PresharedKey: k})} {
		if strings.Contains(s, testPriv) || strings.Contains(s, k.Hex()) {
			t.Errorf("secret printed: %s", s)
		}
	}
}

func FuzzParseWGQuick(f *testing.F) {
	f.Add(protonConf)
	f.Add("[Interface]\nAddress = ::1/129\n[Peer]\nEndpoint = [::1]:1\n")
	f.Add("[Peer]\nAllowedIPs = ,,,\nPersistentKeepalive = off\n")
	f.Fuzz(func(t *testing.T, s string) {
		wg, _, err := ParseWGQuick("fuzz.conf", strings.NewReader(s))
		if err == nil {
			if err := wg.Validate(); err != nil {
				t.Fatalf("accepted but invalid: %v", err)
			}
		}
	})
}

func BenchmarkParseWGQuick(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, _, err := ParseWGQuick("proton.conf", strings.NewReader(protonConf)); err != nil {
			b.Fatal(err)
		}
	}
}
