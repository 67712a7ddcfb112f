package tunnel

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Keys: a private key never prints, in any verb or encoding; a public
// key round-trips; a bad key says why.
func TestKeys(t *testing.T) {
	k, err := NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(k.Base64())
	if err != nil || back != k {
		t.Fatalf("round trip: %v", err)
	}
	j, _ := json.Marshal(struct{ K PrivateKey }{k})
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), string(j)} {
		if strings.Contains(s, k.Base64()) || strings.Contains(s, k.Hex()) || !strings.Contains(s, "[redacted]") {
			t.Errorf("a private key shows: %s", s)
		}
	}
	pub := k.Public()
	if p, err := ParseKey(pub.String()); err != nil || p != pub || pub.IsZero() {
		t.Errorf("public key round trip: %v", err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 43), "not base64 at all, 44 characters long......"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestValues(t *testing.T) {
	for in, want := range map[string]string{"10.2.0.2": "10.2.0.2/32", "fd00::2": "fd00::2/128", " 10.0.0.0/8 ": "10.0.0.0/8"} {
		if p, err := ParsePrefix(in); err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v", in, p, err)
		}
	}
	for _, bad := range []string{"", "10.2.0", "10.2.0.0/33", "x/8"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
	for _, good := range []string{"vpn.example:51820", "198.51.100.1:1", "[2001:db8::1]:51820"} {
		if _, err := ParseEndpoint(good); err != nil {
			t.Errorf("ParseEndpoint(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"vpn.example", ":51820", "vpn.example:0", "vpn.example:70000", "2001:db8::1:51820"} {
		if _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
	if h, p := Endpoint("[2001:db8::1]:51820").HostPort(); h != "2001:db8::1" || p != 51820 {
		t.Errorf("HostPort: %s %d", h, p)
	}
}

// Validate names every missing piece at once.
func TestValidate(t *testing.T) {
	var w WireGuard
	err := w.Validate()
	for _, want := range []string{"no PrivateKey", "no Address", "no [Peer]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("empty tunnel: %v lacks %q", err, want)
		}
	}
	k, _ := NewPrivateKey()
	a, _ := ParsePrefix("10.2.0.2/32")
	w = WireGuard{PrivateKey: k, Address: []Prefix{a}, MTU: 100, Peers: []Peer{{}}}
	err = w.Validate()
	for _, want := range []string{"mtu 100", "peer 1: no PublicKey", "peer 1: no Endpoint", "peer 1: no AllowedIPs"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
	all, _ := ParsePrefix("0.0.0.0/0")
	w.MTU, w.Peers = 1420, []Peer{{PublicKey: k.Public(), Endpoint: "vpn.example:51820", AllowedIPs: []Prefix{all}}}
	if err := w.Validate(); err != nil {
		t.Errorf("a whole tunnel: %v", err)
	}
	if got := w.Addresses(); len(got) != 1 || got[0].String() != "10.2.0.2/32" || !w.HasInline() {
		t.Errorf("Addresses %v", got)
	}
}
