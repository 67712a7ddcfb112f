package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/status"
)

type fakeSource struct {
	mu sync.Mutex
	st status.Status
}

func (f *fakeSource) Status() status.Status { f.mu.Lock(); defer f.mu.Unlock(); return f.st }

func get(t *testing.T, h http.Handler, path string, hdr ...string) (int, string) {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	r.Host = "127.0.0.1:9070"
	r.RemoteAddr = "127.0.0.1:40000" // a program on this host
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestRoutes(t *testing.T) {
	src := &fakeSource{st: status.Status{State: "connecting", Tunnel: status.Tunnel{State: "connecting"}}}
	h := NewServer(src, session.NewHub(nil), Options{Listen: "127.0.0.1:9070"})
	for _, p := range []string{"/v1/port", "/healthz"} {
		code, body := get(t, h, p)
		if code != 503 || strings.Contains(body, `"port": 0`) || strings.Contains(body, `"port":0`) {
			t.Errorf("%s without a port: %d %s", p, code, body)
		}
	}
	// gluetun's routes answer as gluetun does, byte for byte: 200 and port
	// 0 while none is held, compact JSON on one line.
	for p, want := range map[string]string{
		"/v1/portforward":           `{"port":0,"ports":[]}` + "\n",
		"/v1/openvpn/portforwarded": `{"port":0}` + "\n",
		"/v1/vpn/status":            `{"status":"starting"}` + "\n",
		"/v1/openvpn/status":        `{"status":"starting"}` + "\n",
		"/v1/dns/status":            `{"status":"stopped"}` + "\n",
		"/v1/publicip/ip":           `{"public_ip":""}` + "\n",
	} {
		if code, body := get(t, h, p); code != 200 || body != want {
			t.Errorf("%s without a port: %d %q, want %q", p, code, body, want)
		}
	}
	if code, body := get(t, h, "/v1/version"); code != 200 || !strings.HasPrefix(body, `{"version":"","commit":`) || !strings.Contains(body, `"created":`) {
		t.Errorf("/v1/version: %d %s", code, body)
	}
	src.st = status.Status{State: "up", Tunnel: status.Tunnel{State: "up"}, Port: status.Port{Port: 51413, Ports: []int{51413}}}
	if code, body := get(t, h, "/v1/port"); code != 200 || !strings.Contains(body, `"port": 51413`) || !strings.Contains(body, `"ports": [`) {
		t.Errorf("/v1/port: %d %s", code, body)
	}
	for _, p := range []string{"/v1/portforward", "/v1/portforward/"} {
		if code, body := get(t, h, p); code != 200 || body != `{"port":51413,"ports":[51413]}`+"\n" {
			t.Errorf("gluetun shape at %s: %d %s", p, code, body)
		}
	}
	if code, body := get(t, h, "/v1/openvpn/portforwarded"); code != 200 || body != `{"port":51413}`+"\n" {
		t.Errorf("gluetun shape at /v1/openvpn/portforwarded: %d %s", code, body)
	}
	if code, body := get(t, h, "/v1/vpn/status"); code != 200 || strings.Join(strings.Fields(body), "") != `{"status":"running"}` {
		t.Errorf("/v1/vpn/status: %d %s", code, body)
	}
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	// Verified, then dead: /v1/port says so, gluetun's routes keep their
	// shape, /healthz fails with the reason, metrics say dead.
	src.st.Port.Verified, src.st.Port.VerifiedBy = time.Now(), "mapping re-asserted with the gateway"
	if code, body := get(t, h, "/healthz"); code != 200 || !strings.Contains(body, "verified") || !strings.Contains(body, "re-asserted") {
		t.Errorf("healthz of a verified port: %d %q", code, body)
	}
	if _, body := get(t, h, "/v1/portforward"); strings.Join(strings.Fields(body), "") != `{"port":51413,"ports":[51413]}` {
		t.Errorf("gluetun shape with a verified port: %s", body)
	}
	src.st.Port.Dead = "the gateway no longer forwards tcp port 51413"
	if code, body := get(t, h, "/healthz"); code != 503 || !strings.Contains(body, "no longer forwards") {
		t.Errorf("healthz of a dead port: %d %q", code, body)
	}
	if code, body := get(t, h, "/v1/port"); code != 200 || !strings.Contains(body, `"dead": "the gateway`) || !strings.Contains(body, `"verified"`) {
		t.Errorf("/v1/port of a dead port: %d %s", code, body)
	}
	if _, body := get(t, h, "/metrics"); !strings.Contains(body, "vpnfwd_port_dead 1") || !strings.Contains(body, "vpnfwd_port_verified_seconds ") {
		t.Errorf("metrics of a dead port:\n%s", body)
	}
	src.st.Port.Dead, src.st.Port.Verified = "", time.Time{}
	code, body := get(t, h, "/metrics")
	for _, want := range []string{"vpnfwd_port_dead 0", "vpnfwd_forwarded_port 51413", "vpnfwd_tunnel_up 1", "vpnfwd_provider_error 0", "# TYPE vpnfwd_forward_bytes_total counter", `vpnfwd_forward_bytes_total{direction="in"} 0`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Count(body, "# TYPE vpnfwd_forward_bytes_total") != 1 {
		t.Errorf("TYPE line repeated")
	}
}

func TestToken(t *testing.T) {
	h := NewServer(&fakeSource{}, session.NewHub(nil), Options{Token: "s3cret", Listen: "127.0.0.1:9070"})
	if code, _ := get(t, h, "/v1/status"); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := get(t, h, "/v1/status", "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, _ := get(t, h, "/v1/status", "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("right token: %d", code)
	}
	if code, _ := get(t, h, "/v1/status", "Authorization", "s3cret"); code != 401 {
		t.Errorf("a bare token without a scheme: %d, want 401", code)
	}
	if code, _ := get(t, h, "/v1/status?api_key=s3cret"); code != 200 {
		t.Errorf("gluetun's ?api_key=: %d", code)
	}
	if code, _ := get(t, h, "/v1/portforward", "X-API-Key", "s3cret"); code != 200 {
		t.Errorf("gluetun header: %d", code)
	}
	if code, _ := get(t, h, "/healthz"); code != 503 {
		t.Errorf("healthz should not need a token: %d", code)
	}
}

// A web page that rebinds its name to 127.0.0.1 sends its own Host: it
// must not read the API (CVE-2018-5702 in Transmission).
func TestHostCheck(t *testing.T) {
	src := &fakeSource{st: status.Status{State: "up"}}
	h := NewServer(src, session.NewHub(nil), Options{Listen: "127.0.0.1:9070", AllowedHosts: []string{"vpnfwd.lan"}})
	host := func(hst string) int {
		r := httptest.NewRequest("GET", "/v1/status", nil)
		r.Host = hst
		r.RemoteAddr = "127.0.0.1:40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, ok := range []string{"127.0.0.1:9070", "localhost:9070", "[::1]:9070", "LOCALHOST", "vpnfwd.lan:9070"} {
		if c := host(ok); c != 200 {
			t.Errorf("Host %s: %d", ok, c)
		}
	}
	for _, bad := range []string{"attacker.example:9070", "evil.com", "192.168.1.10:9070"} {
		if c := host(bad); c != http.StatusMisdirectedRequest {
			t.Errorf("Host %s: %d, want 421", bad, c)
		}
	}
	sock := NewServer(src, session.NewHub(nil), Options{Listen: "unix:/run/vpnfwd.sock"})
	r := httptest.NewRequest("GET", "/v1/status", nil)
	r.Host = "whatever"
	w := httptest.NewRecorder()
	sock.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Errorf("unix socket with any Host: %d", w.Code)
	}
}

// Event streams are capped: each holds a goroutine and a connection.
func TestEventStreamsCapped(t *testing.T) {
	srv := httptest.NewServer(NewServer(&fakeSource{}, session.NewHub(nil), Options{Listen: "127.0.0.1:9070", MaxStreams: 2}))
	defer srv.Close()
	var bodies []io.Closer
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()
	for i := range 3 {
		resp, err := http.Get(srv.URL + "/v1/events")
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
		want := 200
		if i == 2 {
			want = 503
		}
		if resp.StatusCode != want {
			t.Errorf("stream %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

func TestEvents(t *testing.T) {
	b := session.NewHub(nil)
	defer b.Close()
	resp, cancel := openEvents(t, status.Status{State: "up"}, b)
	defer cancel()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %s", ct)
	}
	r := bufio.NewReader(resp.Body)
	readEvent := func() string {
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l == "\n" {
				return strings.Join(lines, "")
			}
			lines = append(lines, l)
		}
	}
	if ev := readEvent(); !strings.HasPrefix(ev, "event: state\ndata: {\"state\":\"up\"}") {
		t.Errorf("first event %q", ev)
	}
	// The subscriber is registered before the first event is out: the
	// session's events follow, rendered.
	b.Note(session.Event{Kind: session.KindPort, Lease: provider.Lease{Provider: "demo", Ports: []provider.Port{{Public: 7, Local: 7}}}})
	if ev := readEvent(); !strings.HasPrefix(ev, "event: port\ndata: {\"provider\":\"demo\",\"port\":7,") {
		t.Errorf("port event %q", ev)
	}
	b.Note(session.Event{Kind: session.KindReconnect}) // not in the stream
	b.Note(session.Event{Kind: session.KindPublish, Consumer: &status.Consumer{Consumer: "file:/p", OK: true}})
	if ev := readEvent(); !strings.HasPrefix(ev, "event: publish\ndata: {\"consumer\":\"file:/p\"") {
		t.Errorf("publish event %q", ev)
	}
	cancel()
	io.Copy(io.Discard, resp.Body)
}

// gluetun's auth file, as its documentation writes it, is accepted as it
// is: each route passes for the roles that name it, and for vpnfwd's
// token; a route no role names needs the token.
func TestGluetunAuthFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/config.toml"
	os.WriteFile(path, []byte(`[[roles]]
name = "public"
auth = "none"
routes = ["GET /v1/vpn/status"]

[[roles]]
name = "qbittorrent"
auth = "apikey"
apikey = "xyz"
routes = ["GET /v1/portforward", "GET /v1/openvpn/portforwarded"]

[[roles]]
name = "script"
auth = "basic"
username = "me"
password = "p4ss"
routes = ["GET /v1/portforward", "GET /v1/publicip/ip", "GET /v1/updater/status"]
`), 0o600)
	roles, err := ReadAuthFile(path, "")
	if err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{st: status.Status{State: "up", Tunnel: status.Tunnel{State: "up"}, Port: status.Port{Port: 51413, Ports: []int{51413}}}}
	h := NewServer(src, session.NewHub(nil), Options{Listen: "0.0.0.0:8000", Roles: roles, Token: "tok"})
	basic := func(path, user, pass string) int {
		r := httptest.NewRequest("GET", path, nil)
		r.Host = "vpnfwd:8000"
		r.SetBasicAuth(user, pass)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, c := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/v1/vpn/status", nil, 200},
		{"/v1/portforward", nil, 401},
		{"/v1/portforward", []string{"X-API-Key", "xyz"}, 200},
		{"/v1/portforward?api_key=xyz", nil, 200},
		{"/v1/portforward", []string{"X-API-Key", "xy"}, 401},
		{"/v1/publicip/ip", []string{"X-API-Key", "xyz"}, 401}, // not the key's route
		{"/v1/status", []string{"X-API-Key", "xyz"}, 401},      // named by no role: the token only
		{"/v1/status", []string{"Authorization", "Bearer tok"}, 200},
		{"/v1/publicip/ip", []string{"Authorization", "Bearer tok"}, 200},
	} {
		if code, _ := get(t, h, c.path, c.hdr...); code != c.want {
			t.Errorf("%s %v: %d, want %d", c.path, c.hdr, code, c.want)
		}
	}
	if c := basic("/v1/publicip/ip", "me", "p4ss"); c != 200 {
		t.Errorf("basic auth: %d", c)
	}
	for _, up := range [][2]string{{"me", "p4s"}, {"m", "ep4ss"}, {"", ""}} {
		if c := basic("/v1/publicip/ip", up[0], up[1]); c != 401 {
			t.Errorf("basic auth %q: %d, want 401", up, c)
		}
	}
	r := httptest.NewRequest("GET", "/v1/publicip/ip", nil)
	r.Host = "vpnfwd:8000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("no credentials on a basic route: %d %q (curl -u needs the Basic challenge)", w.Code, w.Header().Get("WWW-Authenticate"))
	}

	// The default role covers every route no role names.
	roles, err = ReadAuthFile(path, `{"auth":"apikey","apikey":"dflt"}`)
	if err != nil {
		t.Fatal(err)
	}
	h = NewServer(src, session.NewHub(nil), Options{Listen: "127.0.0.1:8000", Roles: roles})
	if code, _ := get(t, h, "/v1/status", "X-API-Key", "dflt"); code != 200 {
		t.Errorf("default role on /v1/status: %d", code)
	}
	if code, _ := get(t, h, "/v1/portforward", "X-API-Key", "dflt"); code != 401 {
		t.Errorf("default role on a route a role names: %d, want 401", code)
	}

	for content, want := range map[string]string{
		"this is not toml": "api auth file",
		"unknown = 1":      `unknown key "unknown"`,
		"[[roles]]\nname = \"x\"\nauth = \"token\"":                      `auth "token" is not one of`,
		"[[roles]]\nname = \"x\"\nauth = \"apikey\"":                     "needs apikey",
		"[[roles]]\nname = \"x\"\nauth = \"basic\"\nusername = \"u\"":    "needs username and password",
		"[[roles]]\nname = \"x\"\nauth = \"none\"\nroutes = [\"/v1/x\"]": `route "/v1/x" is not`,
	} {
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := ReadAuthFile(path, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
	if _, err := ReadAuthFile("", `{"auth":"apikey"}`); err == nil || !strings.Contains(err.Error(), "needs apikey") {
		t.Errorf("default role without a key: %v", err)
	}
	if _, err := ReadAuthFile("", `{"auth":"none","routes":1,"x":2}`); err == nil {
		t.Error("a default role with unknown fields was accepted")
	}
}

// The event stream ends when the session's run has ended: one that
// connects as the daemon stops hears the state and ends, rather than
// holding the server's shutdown.
func TestEventsEndWithTheRun(t *testing.T) {
	b := session.NewHub(nil)
	b.Close()
	resp, cancel := openEvents(t, status.Status{State: "stopping"}, b)
	defer cancel()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the stream did not end: %v (read %q)", err, body)
	}
	if !strings.HasPrefix(string(body), "event: state\n") {
		t.Errorf("stream %q", body)
	}
}

// openEvents opens GET /v1/events on a server whose source says st and
// whose events come from b; cancel ends the request (within 5 s anyway).
func openEvents(t *testing.T, st status.Status, b *session.Hub) (*http.Response, context.CancelFunc) {
	t.Helper()
	srv := httptest.NewServer(NewServer(&fakeSource{st: st}, b, Options{Listen: "127.0.0.1:9070"}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, cancel
}
