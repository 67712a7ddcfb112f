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

	"github.com/vpnfwd/vpnfwd/provider"
)

// fakeAzire answers like AzireVPN's v3 API (its shape from public
// clients: vopono, gluetun): GET lists the address's ports, POST creates
// one, DELETE with {"internal_ipv4","port"} deletes one.
type fakeAzire struct {
	mu      sync.Mutex
	ports   []portData
	creates int
	deleted []int
	next    int
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
		p := portData{Port: 58216 + f.next, Expires: time.Now().Add(30 * 24 * time.Hour).Unix()}
		f.next++
		f.ports = append(f.ports, p)
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": p})
	case "DELETE":
		var req struct {
			IP   string `json:"internal_ipv4"`
			Port int    `json:"port"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		for i, p := range f.ports {
			if p.Port == req.Port && req.IP == "10.0.16.181" {
				f.ports = append(f.ports[:i], f.ports[i+1:]...)
				f.deleted = append(f.deleted, req.Port)
				json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{}})
				return
			}
		}
		w.Write([]byte(`{"status":"error","message":"Not found"}`))
	}
}

func env(url, token string) provider.Env {
	return provider.Env{Dialer: &net.Dialer{}, Log: slog.New(slog.DiscardHandler), Settings: provider.Settings{"api_url": url, "api_token": token},
		Tunnel: []netip.Prefix{netip.MustParsePrefix("10.0.16.181/32")}}
}

// runOnce runs the provider until it reports a lease, then stops it and waits
// for its exit (and its release).
func runOnce(t *testing.T, f *fakeAzire, url string) provider.Lease {
	t.Helper()
	p, err := Info.New(env(url, "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	got := make(chan provider.Lease, 1)
	done := make(chan struct{})
	go func() { p.Run(ctx, func(l provider.Lease) { got <- l }); close(done) }()
	l := <-got
	cancel()
	<-done
	return l
}

// A port is created for the tunnel address, or an existing one reused;
// vpnfwd deletes its port on a clean exit.
func TestCreateReuseAndDeleteOnExit(t *testing.T) {
	f := &fakeAzire{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	// An existing port (made by another client, say) is reused...
	f.ports = []portData{{Port: 40000, Expires: time.Now().Add(20 * 24 * time.Hour).Unix()}}
	if l := runOnce(t, f, srv.URL); l.Ports[0].Public != 40000 || l.Expires.IsZero() || f.creates != 0 {
		t.Errorf("existing port: %+v, %d created", l, f.creates)
	}
	// ...and deleted at exit, as is one vpnfwd made.
	if len(f.ports) != 0 || len(f.deleted) != 1 || f.deleted[0] != 40000 {
		t.Errorf("after exit: ports %+v, deleted %v", f.ports, f.deleted)
	}
	if l := runOnce(t, f, srv.URL); l.Ports[0].Public != 58216 || f.creates != 1 || len(f.ports) != 0 {
		t.Errorf("created port: %+v, %d created, left %+v", l, f.creates, f.ports)
	}
}

// A port about to expire is replaced, and the replaced one deleted.
func TestExpiringPortReplacedAndDeleted(t *testing.T) {
	f := &fakeAzire{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	f.ports = []portData{{Port: 40000, Expires: time.Now().Add(time.Hour).Unix()}}
	p, _ := Info.New(env(srv.URL, "s3cret"))
	pd, err := p.(*Provider).port(context.Background(), srv.URL, "10.0.16.181")
	if err != nil || pd.Port != 58216 {
		t.Fatalf("port %+v %v", pd, err)
	}
	if len(f.deleted) != 1 || f.deleted[0] != 40000 || len(f.ports) != 1 {
		t.Errorf("replaced port not deleted: deleted %v, left %+v", f.deleted, f.ports)
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
