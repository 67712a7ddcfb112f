package pia

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// Run implements provider.Provider: inside the tunnel it gets (or reuses)
// a signed payload and binds it every RebindEvery.
func (p *Provider) Run(ctx context.Context, report func(provider.Lease)) error {
	p.mu.Lock()
	cn, vip := p.cn, p.vip
	p.mu.Unlock()
	if vip == "" {
		return errors.New("PIA: Run before MakeTunnel")
	}
	var (
		sig       *signature
		fresh     time.Time // when sig was obtained in this run
		lastBound time.Time
		held      = provider.Lease{Provider: "pia"}
		backoff   = time.Second
		reused    bool // sig came from the state directory and has not bound yet
	)
	if s, ok := p.savedPayload(cn); ok {
		sig, reused = &s, true
		p.env.Log.Info("PIA: reusing the saved port-forwarding payload", "port", s.Port, "expires", s.Expires.Format(time.RFC3339))
	}
	for {
		// After a new key on another server (Rekey), its payloads only.
		p.mu.Lock()
		moved := p.cn != cn
		cn, vip = p.cn, p.vip
		p.mu.Unlock()
		if moved {
			p.env.Log.Info("PIA: now on server " + cn + "; asking it for a port")
			sig, fresh, reused = nil, time.Time{}, false
		}
		// A payload is replaced when it nears expiry: one brought from an
		// earlier run once it has less than ReuseFor left, one got in this
		// run after a day (PIA's last two months), any a bind before its end.
		if sig == nil || time.Until(sig.Expires) < time.Minute ||
			(time.Until(sig.Expires) < ReuseFor && (fresh.IsZero() || time.Since(fresh) > 24*time.Hour)) {
			s, err := p.getSignature(ctx, cn, vip)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				report(held.Failed(fmt.Errorf("PIA getSignature: %w", err)))
				if !provider.Wait(ctx, backoff) {
					return nil
				}
				backoff = min(backoff*2, time.Minute)
				continue
			}
			s.Server = cn
			sig, fresh, reused = &s, time.Now(), false
			p.savePayload(s)
			p.env.Log.Info("PIA: new port-forwarding payload", "port", s.Port, "expires", s.Expires.Format(time.RFC3339))
		}
		err := p.bindPort(ctx, cn, vip, *sig)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errPortBusy) || errors.Is(err, errExpired) || err != nil && reused:
			// A saved payload the server refuses for any reason is not
			// retried: a new signature is.
			p.env.Log.Warn("PIA: payload not usable, asking for a new one", "port", sig.Port, "why", err)
			p.env.State.Delete(statePayload)
			sig, fresh, reused = nil, time.Time{}, false
			continue
		case err != nil:
			if held.Held() && time.Since(lastBound) > RebindEvery+5*time.Minute {
				held = provider.Lease{Provider: "pia"}
			}
			report(held.Failed(fmt.Errorf("PIA bindPort (port %d): %w", sig.Port, err)))
			if !provider.Wait(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff, reused = time.Second, false
		lastBound = time.Now()
		held = provider.Lease{Provider: "pia", Protocols: []string{"tcp", "udp"}, Ports: []provider.Port{{Public: sig.Port, Local: sig.Port}},
			Expires: lastBound.Add(RebindEvery + 5*time.Minute), Renewed: lastBound}
		report(held)
		// Rebind every RebindEvery, or just before the payload runs out.
		next := RebindEvery
		if left := time.Until(sig.Expires) - time.Minute; left < next {
			next = max(left, 5*time.Second)
		}
		if !provider.WaitOr(ctx, next, p.refresh) {
			return nil
		}
	}
}

// savedPayload is the payload saved by an earlier run, if it came from
// server cn and has long enough left.
func (p *Provider) savedPayload(cn string) (signature, bool) {
	var s signature
	if p.env.State == nil || p.env.State.Load(statePayload, &s) != nil {
		return s, false
	}
	if s.Server != cn {
		p.env.Log.Info("PIA: the saved payload is from another server; asking this one for a new one", "saved_from", s.Server, "server", cn)
		return s, false
	}
	port, exp, err := decodePayload(s.Payload)
	if err != nil || port != s.Port || s.Signature == "" {
		p.env.Log.Warn("PIA: saved payload unusable, ignoring it", "err", err)
		return s, false
	}
	s.Expires = exp
	if time.Until(exp) < ReuseFor {
		return s, false
	}
	return s, true
}

func (p *Provider) savePayload(s signature) {
	if p.env.State == nil {
		return
	}
	if err := p.env.State.Save(statePayload, s); err != nil {
		p.env.Log.Warn("saving the PIA payload", "err", err)
	}
}

func (p *Provider) pfURL(vip, path string, q url.Values) string {
	return fmt.Sprintf("https://%s/%s?%s", net.JoinHostPort(vip, strconv.Itoa(pfPort)), path, q.Encode())
}

func (p *Provider) getSignature(ctx context.Context, cn, vip string) (signature, error) {
	tok, err := p.token(ctx, p.env.Dialer) // a renewal goes through the tunnel
	if err != nil {
		return signature{}, err
	}
	c := provider.HTTPClient(p.env.Dialer, p.ca, cn)
	b, code, err := get(ctx, c, p.pfURL(vip, "getSignature", url.Values{"token": {tok}}))
	if err != nil {
		return signature{}, explainTLS(err, "PIA getSignature at "+cn, cn, p.cfg.CAFile)
	}
	if code != http.StatusOK {
		return signature{}, fmt.Errorf("PIA getSignature: HTTP %d: %s", code, firstLine(b))
	}
	return parseSignature(b)
}

// bindPort replays payload and signature byte for byte.
func (p *Provider) bindPort(ctx context.Context, cn, vip string, s signature) error {
	c := provider.HTTPClient(p.env.Dialer, p.ca, cn)
	b, code, err := get(ctx, c, p.pfURL(vip, "bindPort", url.Values{"payload": {s.Payload}, "signature": {s.Signature}}))
	if err != nil {
		return explainTLS(err, "PIA bindPort at "+cn, cn, p.cfg.CAFile)
	}
	var r struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	json.Unmarshal(b, &r)
	msg := strings.ToLower(r.Message)
	switch {
	case code == http.StatusConflict || (r.Status != "OK" && strings.Contains(msg, "busy")):
		return fmt.Errorf("%w (port %d): %s", errPortBusy, s.Port, r.Message)
	case strings.Contains(msg, "expire"):
		return fmt.Errorf("%w: %s", errExpired, r.Message)
	case code != http.StatusOK:
		return fmt.Errorf("HTTP %d: %s", code, firstLine(b))
	case r.Status != "OK":
		return fmt.Errorf("status %q: %s", r.Status, r.Message)
	}
	return nil
}

func get(ctx context.Context, c *http.Client, u string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, redact(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return b, resp.StatusCode, err
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s[:min(len(s), 200)]
}
