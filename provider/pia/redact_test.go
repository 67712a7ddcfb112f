package pia

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/provider"
)

// A failed request must not put the token (in the query string) into the
// error, which ends up in logs and status.
func TestTokenNotInErrors(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens: the request fails
	c := provider.HTTPClient(&net.Dialer{}, nil, "")
	_, _, err := get(context.Background(), c, "https://"+addr+"/getSignature?token=SECRET-TOKEN")
	if err == nil {
		t.Fatal("no error")
	}
	for _, e := range []error{err, explainTLS(err, "PIA", "cn", "ca")} {
		if strings.Contains(e.Error(), "SECRET-TOKEN") {
			t.Errorf("token leaked: %v", e)
		}
	}
}
