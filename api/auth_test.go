package api

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vpnfwd/vpnfwd/session"
)

// controlled is a Source whose tunnel PUT /v1/vpn/status stops: it counts
// the stops.
type controlled struct {
	fakeSource
	stops atomic.Int32
}

func (c *controlled) SetRunning(ctx context.Context, running bool) (string, error) {
	if !running {
		c.stops.Add(1)
		return "stopped", nil
	}
	return "running", nil
}

// stopVPN sends gluetun's PUT /v1/vpn/status {"status":"stopped"} from
// peer with Host: localhost and extra headers, and returns the code.
func stopVPN(h *Server, peer string, hdr ...string) int {
	r := httptest.NewRequest("PUT", "/v1/vpn/status", strings.NewReader(`{"status":"stopped"}`))
	r.Host = "localhost"
	r.RemoteAddr = peer
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// Settings that look like authentication but yield no role: each is an
// error naming the setting when given as vpnfwd's own (they served every
// route to anyone); read as gluetun reads its environment, {} and its
// kin are "no default role", which leaves every route no role names
// answering 401.
func TestAuthSettingsThatProtectNothing(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	empty, comments := file("empty.toml", ""), file("comments.toml", "# roles come later\n\n# [[roles]]\n")
	for _, c := range []struct {
		name, path, role string
		want             string // in vpnfwd's error
		gluetunOK        bool   // gluetun reads it as no role
	}{
		{"null", "", "null", "--api-auth-default-role", true},
		{"{}", "", "{}", "--api-auth-default-role", true},
		{`{"auth":""}`, "", `{"auth":""}`, "--api-auth-default-role", true},
		{"empty name only", "", `{"name":"x"}`, "--api-auth-default-role", true},
		{"trailing object", "", `{"auth":"apikey","apikey":"k"}{"auth":"none"}`, "data after the JSON object", false},
		{"trailing word", "", `{"auth":"apikey","apikey":"k"} x`, "--api-auth-default-role", false},
		{"trailing brace", "", `{"auth":"apikey","apikey":"k"}}`, "--api-auth-default-role", false},
		{"whitespace", "", "  ", "--api-auth-default-role", false},
		{"empty file", empty, "", "--api-auth-config", true},
		{"comment-only file", comments, "", comments, true},
		{"empty file with a real default role", empty, `{"auth":"apikey","apikey":"k"}`, "names no role", true},
	} {
		roles, err := ReadAuthFile(c.path, c.role)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: vpnfwd read %d roles, error %v; want an error naming %q", c.name, len(roles), err, c.want)
		}
		roles, err = ReadGluetunAuth(c.path, c.role)
		if c.gluetunOK != (err == nil) {
			t.Errorf("%s: gluetun's reading: %v", c.name, err)
		}
		if err != nil {
			continue
		}
		// gluetun's meaning: no role covers a route, so it answers 401,
		// from this host and from others alike.
		src := &controlled{}
		h := NewServer(src, session.NewHub(nil), Options{Listen: "0.0.0.0:8000", Roles: roles, AuthRequired: true})
		for _, peer := range []string{"127.0.0.1:40000", "192.0.2.7:40000"} {
			if code := stopVPN(h, peer); code != 401 {
				t.Errorf("%s (gluetun): PUT /v1/vpn/status from %s: %d, want 401", c.name, peer, code)
			}
		}
		for _, p := range []string{"/v1/portforward", "/v1/status", "/metrics"} {
			if code, _ := get(t, h, p); code != 401 {
				t.Errorf("%s (gluetun): GET %s: %d, want 401", c.name, p, code)
			}
		}
		if src.stops.Load() != 0 {
			t.Errorf("%s (gluetun): the VPN was stopped", c.name)
		}
	}
	// A role is a role, "none" too: it opens what it names, as written.
	roles, err := ReadAuthFile("", `{"auth":"none"}`)
	if err != nil || len(roles) != 1 || !roles[0].Open() {
		t.Errorf(`{"auth":"none"}: %v %v`, roles, err)
	}
	roles, err = ReadGluetunAuth("", `{"auth":"apikey","apikey":"k"}`)
	if err != nil || len(roles) != 1 || roles[0].Open() {
		t.Errorf("gluetun's apikey default role: %v %v", roles, err)
	}
}

// Host: localhost is a DNS-rebinding check, never a pass: a peer on
// another host does not stop the VPN with it, whatever the API's auth.
func TestHostLocalhostIsNoPass(t *testing.T) {
	keyed, err := ReadAuthFile("", `{"auth":"apikey","apikey":"k3y"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    Options
		peer string
		hdr  []string
		want int
	}{
		{"no auth, remote peer", Options{Listen: "0.0.0.0:9070"}, "192.0.2.7:40000", nil, 403},
		{"no auth, remote peer on IPv6", Options{Listen: "[::]:9070"}, "[2001:db8::7]:40000", nil, 403},
		{"no auth, loopback peer", Options{Listen: "0.0.0.0:9070"}, "127.0.0.1:40000", nil, 200},
		{"no auth, mapped loopback peer", Options{Listen: "[::]:9070"}, "[::ffff:127.0.0.1]:40000", nil, 200},
		{"no auth, unix socket", Options{Listen: "unix:/run/vpnfwd.sock"}, "@", nil, 200},
		{"apikey role, remote peer, no key", Options{Listen: "0.0.0.0:9070", Roles: keyed}, "192.0.2.7:40000", nil, 401},
		{"apikey role, loopback peer, no key", Options{Listen: "0.0.0.0:9070", Roles: keyed}, "127.0.0.1:40000", nil, 401},
		{"apikey role, remote peer, wrong key", Options{Listen: "0.0.0.0:9070", Roles: keyed}, "192.0.2.7:40000", []string{"X-API-Key", "k3"}, 401},
		{"apikey role, remote peer, key", Options{Listen: "0.0.0.0:9070", Roles: keyed}, "192.0.2.7:40000", []string{"X-API-Key", "k3y"}, 200},
		{"token, remote peer, no token", Options{Listen: "0.0.0.0:9070", Token: "t"}, "192.0.2.7:40000", nil, 401},
	} {
		src := &controlled{}
		h := NewServer(src, session.NewHub(nil), c.o)
		code := stopVPN(h, c.peer, c.hdr...)
		if code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
		if stopped := src.stops.Load() == 1; stopped != (c.want == 200) {
			t.Errorf("%s: VPN stopped: %v", c.name, stopped)
		}
	}
}

// An abstract unix socket has no file mode: any user of the namespace
// could connect. The API refuses it, and the auto-bound "unix:".
func TestListenRefusesAbstractSockets(t *testing.T) {
	for addr, want := range map[string]string{
		"unix:@vpnfwd":  "abstract socket",
		"unix:@":        "abstract socket",
		"unix:":         "names no file",
		"unix:a\x00b":   "abstract socket",
		"unix:@/x.sock": "abstract socket",
	} {
		l, err := Listen(addr)
		if err == nil {
			l.Close()
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "unix:/run/vpnfwd/api.sock") {
			t.Errorf("%q: %v, want an error saying %q and what to give", addr, err, want)
		}
	}
	l, err := Listen("unix:" + filepath.Join(t.TempDir(), "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}
