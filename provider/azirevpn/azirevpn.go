// Package azirevpn is AzireVPN's port forwarding: its v3 API, called
// through the tunnel with the account's API token, lists the ports of the
// tunnel address or creates one.
package azirevpn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// DefaultURL is AzireVPN's port-forwarding API.
const DefaultURL = "https://api.azirevpn.com/v3/portforwardings"

// ExpiresInDays is the lifetime asked for a new port.
const ExpiresInDays = 30

// Info describes the provider.
var Info = provider.Info{
	Name:    "azirevpn",
	Summary: "AzireVPN: its API (through the tunnel, with your API token) gives the port",
	Needs:   "a wg-quick file from AzireVPN; api_token or api_token_file",
	Port:    "random; kept while it lasts (asked for 30 days)",
	Renewal: "checked hourly; a new port is made when it is about to expire (the old one deleted); deleted on a clean exit",
	Options: []provider.Option{
		{Key: "api_token", Kind: provider.Secret, Usage: "your AzireVPN API token (TOML; prefer api_token_file)"},
		{Key: "api_token_file", Flag: "api-token-file-provider", Usage: "`FILE` holding the AzireVPN API token"},
		provider.APIURLOption,
	},
	New: func(env provider.Env) (provider.Provider, error) {
		tok, err := env.Settings.Secret("api_token")
		if err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, errors.New("AzireVPN needs your API token: provider.api_token_file (--api-token-file-provider FILE)")
		}
		return &Provider{env: env, token: tok}, nil
	},
}

// Provider keeps one AzireVPN port.
type Provider struct {
	env   provider.Env
	token string
}

type portData struct {
	Port    int   `json:"port"`
	Hidden  bool  `json:"hidden"`
	Expires int64 `json:"expires_at"`
}

// parse reads {"status":"success","data":...} or {"status":"error","message":...}.
func parse(b []byte, data any) error {
	var r struct {
		Status  string          `json:"status"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("AzireVPN answer: %w", err)
	}
	if r.Status != "success" {
		return fmt.Errorf("AzireVPN: %s %s", r.Status, r.Message)
	}
	if err := json.Unmarshal(r.Data, data); err != nil {
		return fmt.Errorf("AzireVPN answer data: %w", err)
	}
	return nil
}

func (p *Provider) call(ctx context.Context, method, url string, body any, data any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := provider.HTTPClient(p.env.Dialer, p.env.Roots, "").Do(req)
	if err != nil {
		return fmt.Errorf("AzireVPN API (through the tunnel): %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("AzireVPN refused the API token (HTTP %d)", resp.StatusCode)
	}
	return parse(b, data)
}

// port returns the tunnel address's port, creating one when there is none
// or it is about to expire (the one it replaces is then deleted).
func (p *Provider) port(ctx context.Context, base, ip string) (portData, error) {
	var list struct {
		Ports []portData `json:"ports"`
	}
	var expiring []portData
	err := p.call(ctx, "GET", base+"?internal_ipv4="+ip, nil, &list)
	if err == nil {
		for _, pd := range list.Ports {
			if pd.Port <= 0 || pd.Port > 65535 {
				continue
			}
			if pd.Expires == 0 || time.Until(time.Unix(pd.Expires, 0)) > 24*time.Hour {
				return pd, nil
			}
			expiring = append(expiring, pd)
		}
	}
	var created portData
	if err := p.call(ctx, "POST", base, map[string]any{"internal_ipv4": ip, "hidden": false, "expires_in": ExpiresInDays}, &created); err != nil {
		return created, err
	}
	if created.Port <= 0 || created.Port > 65535 {
		return created, fmt.Errorf("AzireVPN created port %d", created.Port)
	}
	for _, old := range expiring {
		if old.Port != created.Port {
			if err := p.remove(ctx, base, ip, old.Port); err != nil {
				p.env.Log.Warn("deleting the AzireVPN port it replaced", "port", old.Port, "err", err)
			}
		}
	}
	return created, nil
}

// remove deletes a port forwarding (DELETE with the address and port, as
// AzireVPN's v3 API takes it; seen in vopono's client).
func (p *Provider) remove(ctx context.Context, base, ip string, port int) error {
	var out json.RawMessage
	return p.call(ctx, "DELETE", base, map[string]any{"internal_ipv4": ip, "port": port}, &out)
}

// Run implements provider.Provider.
func (p *Provider) Run(ctx context.Context, report func(provider.Lease)) error {
	ip, err := p.env.TunnelIPv4()
	if err != nil {
		return err
	}
	base := p.env.APIURL(DefaultURL)
	backoff := 2 * time.Second
	held := provider.Lease{Provider: "azirevpn"}
	for {
		pd, err := p.port(ctx, base, ip.String())
		wait := time.Hour
		if err != nil {
			if ctx.Err() != nil {
				p.release(base, ip.String(), held)
				return nil
			}
			if held.Held() && !held.Expires.IsZero() && time.Now().After(held.Expires) {
				held = provider.Lease{Provider: "azirevpn"}
			}
			report(held.Failed(fmt.Errorf("AzireVPN port: %w", err)))
			wait, backoff = backoff, min(backoff*2, 10*time.Minute)
		} else {
			backoff = 2 * time.Second
			l := provider.Lease{Provider: "azirevpn", Protocols: []string{"tcp", "udp"},
				Ports: []provider.Port{{Public: uint16(pd.Port), Local: uint16(pd.Port)}}, Renewed: time.Now()}
			if pd.Expires > 0 {
				l.Expires = time.Unix(pd.Expires, 0)
			}
			held = l
			report(l)
		}
		if !provider.Wait(ctx, wait) {
			p.release(base, ip.String(), held)
			return nil
		}
	}
}

// release deletes the port on a clean exit, briefly: shutdown must not
// hang.
func (p *Provider) release(base, ip string, held provider.Lease) {
	if !held.Held() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	port := int(held.Ports[0].Public)
	if err := p.remove(ctx, base, ip, port); err != nil {
		p.env.Log.Warn("deleting the AzireVPN port at exit", "port", port, "err", err)
		return
	}
	p.env.Log.Info("AzireVPN port deleted", "port", port)
}
