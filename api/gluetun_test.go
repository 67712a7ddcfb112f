package api

import (
	"net/http/httptest"
	"testing"

	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/status"
)

// In gluetun's environment the control server answers as gluetun's auth
// middleware does (internal/server/middlewares/auth/middleware.go): an
// unknown route 404 and a wrong method 405 before any credentials, then
// 401, each with net/http's status text as the body; vpnfwd's /healthz
// stays open for the image's health check. The ports come sorted, as
// gluetun's service sorts them, and /v1/version's fields are in gluetun's
// order.
func TestGluetunModeAnswers(t *testing.T) {
	src := &fakeSource{st: status.Status{State: "up", Version: "1.2.3", Port: status.Port{Port: 40003, Ports: []int{40003, 40001, 40002}}}}
	keyed, err := ReadGluetunAuth("", `{"auth":"apikey","apikey":"k"}`)
	if err != nil {
		t.Fatal(err)
	}
	none, err := ReadGluetunAuth("", "{}")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, path string
		roles              []Role
		key                string
		code               int
		body               string
	}{
		{"no role", "GET", "/v1/portforward", none, "", 401, "Unauthorized\n"},
		{"unknown route", "GET", "/v1/nope", none, "", 404, "Not Found\n"},
		{"wrong method", "POST", "/v1/portforward", none, "", 405, "Method Not Allowed\n"},
		{"wrong key", "GET", "/v1/portforward", keyed, "x", 401, "Unauthorized\n"},
		{"key", "GET", "/v1/portforward", keyed, "k", 200, `{"port":40003,"ports":[40001,40002,40003]}` + "\n"},
		{"version", "GET", "/v1/version", keyed, "k", 200, `{"version":"1.2.3","commit":"","created":""}` + "\n"},
		{"health check, no role (answered: unhealthy, not 401)", "GET", "/healthz", none, "", 503, ""},
	} {
		h := NewServer(src, session.NewHub(nil), Options{Listen: "0.0.0.0:8000", Roles: c.roles, AuthRequired: true})
		r := httptest.NewRequest(c.method, c.path, nil)
		r.Host, r.RemoteAddr = "127.0.0.1:8000", "172.18.0.5:40000"
		if c.key != "" {
			r.Header.Set("X-API-Key", c.key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.code || (c.body != "" && w.Body.String() != c.body) {
			t.Errorf("%s: %s %s: %d %q, want %d %q", c.name, c.method, c.path, w.Code, w.Body.String(), c.code, c.body)
		}
		if c.code != 200 && c.path != "/healthz" && w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s: content type %q", c.name, w.Header().Get("Content-Type"))
		}
	}
}

// A key or password of spaces protects nothing (found in review: a key
// of one space opened the API to another host's ?api_key=%20).
func TestBlankCredentialsRefused(t *testing.T) {
	for _, role := range []string{`{"auth":"apikey","apikey":" "}`, `{"auth":"basic","username":"u","password":"\t"}`, `{"auth":"basic","username":" ","password":"p"}`} {
		if _, err := ReadAuthFile("", role); err == nil {
			t.Errorf("%s accepted", role)
		}
		if _, err := ReadGluetunAuth("", role); err == nil {
			t.Errorf("%s accepted (gluetun's reading)", role)
		}
	}
}
