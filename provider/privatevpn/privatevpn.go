// Package privatevpn is PrivateVPN's port forwarding: one API call through
// the tunnel with the tunnel address; the port has no renewal.
package privatevpn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// DefaultURL is PrivateVPN's port API.
const DefaultURL = "https://connect.pvdatanet.com/v3/Api/port"

// Info describes the provider.
var Info = provider.Info{
	Name:    "privatevpn",
	Summary: "PrivateVPN: its API, asked through the tunnel, names the port",
	Needs:   "a wg-quick file from PrivateVPN",
	Port:    "fixed per server and account",
	Renewal: "none (asked again after a reconnect)",
	Options: []provider.Option{provider.APIURLOption},
	New:     func(env provider.Env) (provider.Provider, error) { return &Provider{env: env}, nil },
}

// Provider asks once and holds the port.
type Provider struct{ env provider.Env }

var portRE = regexp.MustCompile(`(?i)port\s+(\d{1,5})`)

// ErrUnsupported means PrivateVPN answered supported:false.
var ErrUnsupported = errors.New("PrivateVPN says port forwarding is not supported for this connection (reported for WireGuard sessions): try another server, or OpenVPN with PrivateVPN's own app")

// ParseAnswer reads {"supported":true,"status":"Port 61527 UDP/TCP"}.
func ParseAnswer(b []byte) (uint16, error) {
	var a struct {
		Supported bool   `json:"supported"`
		Status    string `json:"status"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return 0, fmt.Errorf("PrivateVPN answer: %w", err)
	}
	if !a.Supported {
		return 0, ErrUnsupported
	}
	m := portRE.FindStringSubmatch(a.Status)
	if m == nil {
		return 0, fmt.Errorf("PrivateVPN answer has no port: %q", a.Status)
	}
	n, _ := strconv.Atoi(m[1])
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("PrivateVPN answer: port %d", n)
	}
	return uint16(n), nil
}

// Run implements provider.Provider.
func (p *Provider) Run(ctx context.Context, report func(provider.Lease)) error {
	ip, err := p.env.TunnelIPv4()
	if err != nil {
		return err
	}
	base := p.env.APIURL(DefaultURL)
	url := base + "?ip[]=" + ip.String() // literal brackets, as the API wants
	backoff := 2 * time.Second
	for {
		port, err := p.ask(ctx, url)
		if err == nil {
			return provider.Hold(ctx, provider.Lease{Provider: "privatevpn", Protocols: []string{"tcp", "udp"},
				Ports: []provider.Port{{Public: port, Local: port}}}, report)
		}
		if ctx.Err() != nil {
			return nil
		}
		report(provider.Lease{Provider: "privatevpn"}.Failed(fmt.Errorf("PrivateVPN port: %w", err)))
		if errors.Is(err, ErrUnsupported) {
			backoff = 10 * time.Minute
		}
		if !provider.Wait(ctx, backoff) {
			return nil
		}
		backoff = min(backoff*2, 10*time.Minute)
	}
}

func (p *Provider) ask(ctx context.Context, url string) (uint16, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := provider.HTTPClient(p.env.Dialer, p.env.Roots, "").Do(req)
	if err != nil {
		return 0, fmt.Errorf("PrivateVPN API (through the tunnel): %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("PrivateVPN API: HTTP %d", resp.StatusCode)
	}
	return ParseAnswer(b)
}
