package azirevpn

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/provider"
)

// fakeAzire answers like AzireVPN's v3 API.
type fakeAzire struct {
	mu      sync.Mutex
	ports   []portData
	creates int
}

func (f *fakeAzire) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer s3cret" {
		w.WriteHeader(401)
		w.Write([]byte(`{"status":"error","message":"Unauthorized"}`))
		return
	}
	switch r.Method {
	case "GET":
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"internal_ipv4": r.URL.Query().Get("internal_ipv4"), "ports": f.ports}})
	case "POST":
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		if req["internal_ipv4"] != "10.0.16.181" || req["expires_in"] != float64(ExpiresInDays) {
			w.Write([]byte(`{"status":"error","message":"Input data is invalid"}`))
			return
		}
		f.creates++
		p := portData{Port: 58216, Expires: time.Now().Add(30 * 24 * time.Hour).Unix()}
		f.ports = append(f.ports, p)
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": p})
	}
}

func env(url, token string) provider.Env {
	return provider.Env{Dialer: &net.Dialer{}, Log: slog.New(slog.DiscardHandler), Config: config.Provider{APIURL: url, APIToken: config.Secret(token)},
		Tunnel: []netip.Prefix{netip.MustParsePrefix("10.0.16.181/32")}}
}

func TestCreateThenReuse(t *testing.T) {
	f := &fakeAzire{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	for round := 0; round < 2; round++ {
		p, err := Info.New(env(srv.URL, "s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got := make(chan provider.Lease, 1)
		go p.Run(ctx, func(l provider.Lease) { got <- l })
		l := <-got
		cancel()
		if l.Ports[0].Public != 58216 || l.Expires.IsZero() {
			t.Errorf("round %d: %+v", round, l)
		}
	}
	if f.creates != 1 {
		t.Errorf("%d ports created: the existing one should be reused", f.creates)
	}
}

func TestBadToken(t *testing.T) {
	srv := httptest.NewServer(&fakeAzire{})
	defer srv.Close()
	p, _ := Info.New(env(srv.URL, "wrong"))
	_, err := p.(*Provider).port(context.Background(), srv.URL, "10.0.16.181")
	if err == nil || !strings.Contains(err.Error(), "refused the API token") {
		t.Errorf("%v", err)
	}
	if _, err := Info.New(env(srv.URL, "")); err == nil || !strings.Contains(err.Error(), "api_token") {
		t.Errorf("no token: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"status":"success","data":{"port":58216,"hidden":false,"expires_at":1687434503}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var pd portData
		parse(b, &pd)
	})
}
