package provider

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// TunnelIPv4 is the first IPv4 tunnel address.
func (e Env) TunnelIPv4() (netip.Addr, error) {
	for _, p := range e.Tunnel {
		if p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, errors.New("the tunnel has no IPv4 address")
}

// Wait waits d or until ctx ends; it reports whether d passed.
func Wait(ctx context.Context, d time.Duration) bool { return WaitOr(ctx, d, nil) }

// WaitOr is Wait that also ends early, reporting true, when wake delivers
// (a provider asked to renew now).
func WaitOr(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case <-wake:
		return true
	}
}

// Hold reports l and keeps it until ctx ends (providers with no renewal).
func Hold(ctx context.Context, l Lease, report func(Lease)) error {
	report(l)
	<-ctx.Done()
	return nil
}

// APIURL is the provider API address: the api_url option, else def.
func (e Env) APIURL(def string) string {
	if u := e.Settings.String("api_url"); u != "" {
		return u
	}
	return def
}

// APIURLOption is the api_url option of providers with an HTTP API.
var APIURLOption = Option{Key: "api_url", Flag: "provider-api-url", Kind: URL, Usage: "override the provider API `URL`"}
