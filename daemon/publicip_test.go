package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// ipinfo.io's JSON (its documented /json answer) and a plain address both
// give the public address; anything else is an error, not an address.
func TestLookupPublicIP(t *testing.T) {
	answers := map[string]string{
		"/json":  `{"ip":"203.0.113.7","hostname":"h.example","city":"Amsterdam","region":"North Holland","country":"NL","loc":"52.37,4.89","org":"AS9009 M247","postal":"1012","timezone":"Europe/Amsterdam"}`,
		"/plain": "203.0.113.8\n",
		"/bad":   "<html>rate limited</html>",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(answers[r.URL.Path])) }))
	defer srv.Close()
	info, err := lookupPublicIP(context.Background(), srv.Client(), srv.URL+"/json")
	if err != nil || info.IP != "203.0.113.7" || info.Country != "NL" || info.Organization != "AS9009 M247" || info.Location != "52.37,4.89" || info.PostalCode != "1012" {
		t.Errorf("ipinfo JSON: %+v %v", info, err)
	}
	if info, err := lookupPublicIP(context.Background(), srv.Client(), srv.URL+"/plain"); err != nil || info.IP != "203.0.113.8" {
		t.Errorf("plain: %+v %v", info, err)
	}
	if _, err := lookupPublicIP(context.Background(), srv.Client(), srv.URL+"/bad"); err == nil {
		t.Error("an HTML page was taken for an address")
	}
	if got := redactQuery("https://ipinfo.io/json?token=abc"); got != "https://ipinfo.io/json?[redacted]" {
		t.Errorf("redacted %q", got)
	}
}
