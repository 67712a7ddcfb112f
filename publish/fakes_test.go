package publish

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/status"
)

// fakeQBit52 behaves like qBittorrent 5.2's Web API where it differs from
// 4.x: 204 on login, 401 on bad credentials, cookie QBT_SID_<port>, API
// keys as bearer tokens (not on auth/*), CSRF check on Origin/Referer, ban
// (403) after 5 failed logins, proxy_type as a string.
type fakeQBit52 struct {
	mu       sync.Mutex
	port     int
	random   bool
	upnp     bool
	proxy    string
	failures int
	logins   int
	sessions map[string]bool
	apiKey   string
	t        *testing.T
}

func newFakeQBit52(t *testing.T) (*fakeQBit52, *httptest.Server) {
	f := &fakeQBit52{port: 6881, random: true, upnp: true, proxy: "None", sessions: map[string]bool{}, apiKey: "qbt_k3y", t: t}
	return f, httptest.NewServer(f)
}

func (f *fakeQBit52) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
		f.t.Errorf("vpnfwd sent Origin/Referer (%q, %q): qBittorrent's CSRF check would answer 401", r.Header.Get("Origin"), r.Header.Get("Referer"))
		w.WriteHeader(401)
		return
	}
	if r.URL.Path == "/api/v2/auth/login" {
		f.logins++
		if f.failures >= 5 {
			w.WriteHeader(403)
			w.Write([]byte("Your IP address has been banned after too many failed authentication attempts."))
			return
		}
		r.ParseForm()
		if r.PostForm.Get("username") != "admin" || r.PostForm.Get("password") != "goodpass" {
			f.failures++
			w.WriteHeader(401)
			return
		}
		f.failures = 0
		http.SetCookie(w, &http.Cookie{Name: "QBT_SID_8080", Value: "s1", Path: "/"})
		f.sessions["s1"] = true
		w.WriteHeader(204)
		return
	}
	authed := r.Header.Get("Authorization") == "Bearer "+f.apiKey
	if c, err := r.Cookie("QBT_SID_8080"); err == nil && f.sessions[c.Value] {
		authed = true
	}
	if !authed {
		w.WriteHeader(403)
		return
	}
	switch r.URL.Path {
	case "/api/v2/app/preferences":
		json.NewEncoder(w).Encode(map[string]any{"listen_port": f.port, "random_port": f.random, "upnp": f.upnp, "proxy_type": f.proxy, "proxy_ip": "", "proxy_port": 8080})
	case "/api/v2/app/setPreferences":
		r.ParseForm()
		var p map[string]any
		json.Unmarshal([]byte(r.PostForm.Get("json")), &p)
		if v, ok := p["listen_port"].(float64); ok {
			f.port = int(v)
		}
		if v, ok := p["random_port"].(bool); ok {
			f.random = v
		}
		if v, ok := p["upnp"].(bool); ok {
			f.upnp = v
		}
		if v, ok := p["proxy_type"].(string); ok {
			f.proxy = v
		}
	default:
		w.WriteHeader(404)
	}
}

func TestQBittorrent52Login(t *testing.T) {
	f, srv := newFakeQBit52(t)
	defer srv.Close()
	c := NewQBittorrent(ClientConfig{URL: srv.URL, Username: "admin", Password: "goodpass"}, QBittorrentOptions{SOCKS5: "127.0.0.1:1080"})
	if err := c.Publish(context.Background(), portEv("port", 50001)); err != nil {
		t.Fatal(err)
	}
	if f.port != 50001 || f.random || f.upnp || f.proxy != "SOCKS5" {
		t.Errorf("fake state %+v", f)
	}
}

func TestQBittorrent52APIKey(t *testing.T) {
	f, srv := newFakeQBit52(t)
	defer srv.Close()
	c := NewQBittorrent(ClientConfig{URL: srv.URL, APIKey: "qbt_k3y"}, QBittorrentOptions{})
	if err := c.Publish(context.Background(), portEv("port", 50002)); err != nil {
		t.Fatal(err)
	}
	if f.port != 50002 || f.logins != 0 {
		t.Errorf("port %d after %d logins (an API key needs none)", f.port, f.logins)
	}
	bad := NewQBittorrent(ClientConfig{URL: srv.URL, APIKey: "wrong"}, QBittorrentOptions{})
	err := bad.Publish(context.Background(), portEv("port", 50003))
	var ra *RetryAfter
	if !errors.As(err, &ra) || !strings.Contains(err.Error(), "refused the API key") {
		t.Errorf("wrong key: %v", err)
	}
}

// A wrong password through the publisher: one failed login, then a long
// wait; never the five that get the address banned.
func TestQBittorrentWrongPasswordNoBanLoop(t *testing.T) {
	f, srv := newFakeQBit52(t)
	defer srv.Close()
	c := NewQBittorrent(ClientConfig{URL: srv.URL, Username: "admin", Password: "bad"}, QBittorrentOptions{})
	var results []status.Consumer
	var mu sync.Mutex
	d := newHarness(func(r status.Consumer) { mu.Lock(); results = append(results, r); mu.Unlock() }, c)
	d.Send(portEv("port", 50004))
	time.Sleep(2 * time.Second)
	d.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logins != 1 {
		t.Errorf("%d login attempts in 2 s; want 1 and a long back-off", f.logins)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) == 0 || results[0].OK || !strings.Contains(results[0].Error, "not trying again for 1m0s") {
		t.Errorf("results %+v", results)
	}
}

func TestQBittorrentBanned(t *testing.T) {
	f, srv := newFakeQBit52(t)
	defer srv.Close()
	f.failures = 5
	c := NewQBittorrent(ClientConfig{URL: srv.URL, Username: "admin", Password: "goodpass"}, QBittorrentOptions{})
	err := c.Publish(context.Background(), portEv("port", 50005))
	var ra *RetryAfter
	if !errors.As(err, &ra) || ra.Delay != time.Hour || !strings.Contains(err.Error(), "banned") {
		t.Errorf("banned: %v", err)
	}
}

// fakeTransmission41 answers as Transmission 4.1 does (its rpc-spec.md and
// rpc-server.cc): rpc-version 18, JSON-RPC 2.0 requests with snake_case
// methods and keys, the old request form still accepted (deprecated, with
// kebab-case keys), and a session id that rotates.
type fakeTransmission41 struct {
	mu      sync.Mutex
	sid     int
	port    int
	random  bool
	calls   int
	oldForm int // requests in the deprecated format
}

func (f *fakeTransmission41) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls%3 == 0 {
		f.sid++ // the session id changes under vpnfwd's feet
	}
	sid := "sid" + string(rune('a'+f.sid))
	if r.Header.Get("X-Transmission-Session-Id") != sid {
		w.Header().Set("X-Transmission-Session-Id", sid)
		w.WriteHeader(409)
		return
	}
	var req struct {
		JSONRPC   string         `json:"jsonrpc"`
		ID        any            `json:"id"`
		Method    string         `json:"method"`
		Params    map[string]any `json:"params"`
		Arguments map[string]any `json:"arguments"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	if req.JSONRPC == "2.0" {
		reply := func(result any) {
			json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": result})
		}
		switch req.Method {
		case "session_get":
			reply(map[string]any{"peer_port": f.port, "peer_port_random_on_start": f.random, "port_forwarding_enabled": false, "rpc_version": 18})
		case "session_set":
			if v, ok := req.Params["peer_port"].(float64); ok {
				f.port = int(v)
			}
			f.random = req.Params["peer_port_random_on_start"] == true
			reply(map[string]any{})
		default:
			json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32601, "message": "Method not found"}})
		}
		return
	}
	f.oldForm++
	switch req.Method {
	case "session-get":
		json.NewEncoder(w).Encode(map[string]any{"result": "success", "arguments": map[string]any{"peer-port": f.port, "peer-port-random-on-start": f.random,
			"port-forwarding-enabled": false, "rpc-version": 18}})
	case "session-set":
		if v, ok := req.Arguments["peer-port"].(float64); ok {
			f.port = int(v)
		}
		f.random = req.Arguments["peer-port-random-on-start"] == true
		json.NewEncoder(w).Encode(map[string]any{"result": "success", "arguments": map[string]any{}})
	default:
		json.NewEncoder(w).Encode(map[string]any{"result": "method name not recognized"})
	}
}

func TestTransmission41SessionRotation(t *testing.T) {
	f := &fakeTransmission41{port: 51413, random: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := NewTransmission(ClientConfig{URL: srv.URL + "/transmission/rpc"})
	for _, p := range []uint16{50010, 50011, 50012} {
		if err := c.Publish(context.Background(), portEv("port", p)); err != nil {
			t.Fatal(err)
		}
		if f.port != int(p) || f.random {
			t.Fatalf("fake at %d random=%v, want %d", f.port, f.random, p)
		}
	}
	// Only the version probe used the deprecated format.
	if f.oldForm != 1 {
		t.Errorf("%d requests in the deprecated format; want only the version probe", f.oldForm)
	}
}

// Transmission refuses a Host name outside its whitelist with 421: say so,
// with the setting to change.
func TestTransmissionHostWhitelist(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMisdirectedRequest)
		w.Write([]byte("<h1>421: Misdirected Request</h1><p>Transmission received your request, but the hostname was unrecognized.</p>"))
	}))
	defer srv.Close()
	err := NewTransmission(ClientConfig{URL: srv.URL}).Publish(context.Background(), portEv("port", 50030))
	var ra *RetryAfter
	if !errors.As(err, &ra) || !strings.Contains(err.Error(), "rpc-host-whitelist") {
		t.Errorf("421: %v", err)
	}
}

func TestQBittorrentNoCredentialsSaysWhatToDo(t *testing.T) {
	f, srv := newFakeQBit52(t)
	defer srv.Close()
	c := NewQBittorrent(ClientConfig{URL: srv.URL}, QBittorrentOptions{})
	err := c.Publish(context.Background(), portEv("port", 50020))
	var ra *RetryAfter
	// No guess: a wrong one would count towards qBittorrent's ban.
	if !errors.As(err, &ra) || !strings.Contains(err.Error(), "--qbittorrent-user") || f.logins != 0 {
		t.Errorf("%v after %d logins, want none", err, f.logins)
	}
}
