package portcheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAnswer(t *testing.T) {
	for _, c := range []struct {
		body    string
		open    bool
		unknown bool
	}{
		{"1", true, false}, {"0\n", false, false}, {"true", true, false}, {"Closed", false, false},
		{`{"open":true}`, true, false}, {`{"status":"closed"}`, false, false}, {`{"reachable":false}`, false, false},
		{"", false, true}, {"<html>rate limited</html>", false, true}, {`{"error":"busy"}`, false, true},
		{strings.Repeat("x", 10000), false, true},
	} {
		open, err := Answer(c.body)
		if open != c.open || (err != nil) != c.unknown || (err != nil && !errors.Is(err, ErrNoAnswer)) {
			t.Errorf("Answer(%.20q) = %v, %v", c.body, open, err)
		}
	}
}

func TestTemplate(t *testing.T) {
	for _, bad := range []string{"", "https://x.example/", "ftp://x.example/{port}", "{port}"} {
		if ParseTemplate(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := ParseTemplate(Transmission); err != nil {
		t.Error(err)
	}
	got := Expand("http://c.example/check?ip={ip}&port={port}", netip.MustParseAddr("11.22.33.44"), 41234)
	if got != "http://c.example/check?ip=11.22.33.44&port=41234" {
		t.Errorf("Expand: %s", got)
	}
	if h := Host(Transmission); h != "portcheck.transmissionbt.com" {
		t.Errorf("Host: %s", h)
	}
}

// Check against a checker that answers, one that fails, and one that
// never ends its answer: only a clear answer is open or closed.
func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/41234":
			fmt.Fprint(w, "1")
		case "/41235":
			fmt.Fprint(w, "0")
		case "/500":
			http.Error(w, "oops", 500)
		case "/forever":
			w.Write([]byte("1"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := srv.Client()
	if open, err := Check(ctx, c, srv.URL+"/{port}", netip.Addr{}, 41234); !open || err != nil {
		t.Errorf("open port: %v %v", open, err)
	}
	if open, err := Check(ctx, c, srv.URL+"/{port}", netip.Addr{}, 41235); open || err != nil {
		t.Errorf("closed port: %v %v", open, err)
	}
	if _, err := Check(ctx, c, srv.URL+"/500?{port}", netip.Addr{}, 1); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("HTTP 500: %v", err)
	}
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := Check(short, c, srv.URL+"/forever?{port}", netip.Addr{}, 1); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("endless answer: %v", err)
	}
}
