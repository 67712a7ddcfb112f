package privatevpn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

func TestParseAnswer(t *testing.T) {
	if p, err := ParseAnswer([]byte(`{"supported":true,"status":"Port 61527 UDP/TCP"}`)); err != nil || p != 61527 {
		t.Errorf("%d %v", p, err)
	}
	if _, err := ParseAnswer([]byte(`{"supported":false,"status":""}`)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unsupported: %v", err)
	}
	for _, bad := range []string{`{"supported":true,"status":"no port here"}`, `{"supported":true,"status":"Port 99999"}`, `nope`} {
		if _, err := ParseAnswer([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestRunAsksWithTunnelIP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "ip[]=10.34.0.7" && r.URL.Query().Get("ip[]") != "10.34.0.7" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		w.Write([]byte(`{"supported":true,"status":"Port 61527 UDP/TCP"}`))
	}))
	defer srv.Close()
	env := provider.Env{Dialer: &net.Dialer{}, Log: slog.New(slog.DiscardHandler), Settings: provider.Settings{"api_url": srv.URL},
		Tunnel: []netip.Prefix{netip.MustParsePrefix("10.34.0.7/32")}}
	p, _ := Info.New(env)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan provider.Lease, 1)
	go p.Run(ctx, func(l provider.Lease) { got <- l })
	if l := <-got; l.Ports[0].Public != 61527 {
		t.Errorf("%+v", l)
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(`{"supported":true,"status":"Port 61527 UDP/TCP"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParseAnswer(b); err == nil && p == 0 {
			t.Fatal("port 0")
		}
	})
}
