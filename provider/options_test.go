package provider

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/secret"
)

// Settings come as TOML values (int64, []any, strings) or as strings from
// flags and the environment; both read the same.
func TestSettings(t *testing.T) {
	s := Settings{"a": int64(40001), "b": []any{int64(1), int64(2)}, "c": "3, 4", "d": int64(90), "e": "2m", "f": secret.String("pw")}
	for _, tc := range []struct {
		key  string
		want []uint16
	}{{"a", []uint16{40001}}, {"b", []uint16{1, 2}}, {"c", []uint16{3, 4}}, {"none", nil}} {
		if got, err := s.Ports(tc.key); err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Ports(%s) = %v, %v", tc.key, got, err)
		}
	}
	if d, _ := s.Duration("d"); d != 90*time.Second {
		t.Errorf("Duration(d) = %s", d)
	}
	if d, _ := s.Duration("e"); d != 2*time.Minute {
		t.Errorf("Duration(e) = %s", d)
	}
	if pw, _ := s.Secret("f"); pw != "pw" || strings.Contains(fmt.Sprint(s), "pw") {
		t.Errorf("secret %q, shown %v", pw, s)
	}
	if w := s.With("x", "y"); w.String("x") != "y" || s.String("x") != "" {
		t.Error("With changed the original")
	}
}

func TestCheck(t *testing.T) {
	info := Info{Name: "p", Options: []Option{{Key: "port", Kind: Ports}, {Key: "gw", Kind: IPv4}, {Key: "url", Kind: URL}, {Key: "life", Kind: Duration}, {Key: "pw", Kind: Secret}}}
	for _, tc := range []struct {
		s            Settings
		warn, errors string
	}{
		{Settings{"port": "1,2", "gw": "10.2.0.1", "url": "https://x", "life": "60s", "pw": "hunter2"}, "", ""},
		{Settings{"port": int64(70000)}, "", "provider.port: 70000 is not a port"},
		{Settings{"gw": "fd00::1"}, "", "not an IPv4 address"},
		{Settings{"url": "ftp://x"}, "", "not an http:// or https:// URL"},
		{Settings{"life": "soon"}, "", "not a duration"},
		{Settings{"pw": int64(1)}, "", "provider.pw: want a string"},
		{Settings{"region": "de"}, "provider.region: p takes no such option, ignored (its options: port, gw, url, life, pw)", ""},
	} {
		warns, err := info.Check(tc.s)
		if got := strings.Join(warns, "\n"); got != tc.warn {
			t.Errorf("%v: warnings %q", tc.s, got)
		}
		if (err == nil) != (tc.errors == "") || (err != nil && !strings.Contains(err.Error(), tc.errors)) {
			t.Errorf("%v: error %v, want %q", tc.s, err, tc.errors)
		}
		if v, ok := tc.s["pw"].(string); ok {
			t.Errorf("secret left as a plain string %q", v)
		}
	}
}
