package pia

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/secret"
)

// Where PIA publishes the files vpnfwd needs but must not embed.
const (
	caHint  = "PIA publishes it as ca.rsa.4096.crt in its manual-connections repository (github.com/pia-foss/manual-connections)"
	keyHint = "PIA ships its server-list signing key with its clients"
)

// loadCA reads PIA's CA certificate.
func loadCA(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, fmt.Errorf("PIA needs its CA certificate to talk to its servers: set ca_file (--ca-file) to PIA's ca.rsa.4096.crt; %s", caHint)
	}
	b, err := secret.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("PIA CA certificate %s: %w; %s", path, err, caHint)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("PIA CA certificate %s holds no PEM certificate; %s", path, caHint)
	}
	return pool, nil
}

// redact drops query strings (PIA's token travels in them) from the URL
// an *url.Error would print.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.RawQuery != "" {
			u.RawQuery = "[redacted]"
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

// explainTLS turns certificate errors into what to check.
func explainTLS(err error, who, cn, caFile string) error {
	err = redact(err)
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua) || (errors.As(err, &ce) && strings.Contains(ce.Error(), "unknown authority")):
		return fmt.Errorf("%s: its certificate is not signed by the CA in %s (CA mismatch): is that PIA's ca.rsa.4096.crt? %w", who, caFile, err)
	case errors.As(err, &he) || (errors.As(err, &ce) && strings.Contains(ce.Error(), "certificate is valid for")):
		return fmt.Errorf("%s: its certificate is not for %q (CA mismatch or wrong server): %w", who, cn, err)
	}
	return fmt.Errorf("%s: %w", who, err)
}

func getJSON(ctx context.Context, c *http.Client, method, u string, body io.Reader, hdr map[string]string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, err
	}
	for k, val := range hdr {
		req.Header.Set(k, val)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b[:min(len(b), 300)])))
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, fmt.Errorf("bad answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// fetchToken logs in with username and password.
func fetchToken(ctx context.Context, c *http.Client, tokenURL, user, pass string) (string, error) {
	var r struct {
		Token string `json:"token"`
	}
	form := url.Values{"username": {user}, "password": {pass}}
	code, err := getJSON(ctx, c, "POST", tokenURL, strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, &r)
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		return "", fmt.Errorf("PIA refused the username or password (user %q)", user)
	}
	if err != nil {
		return "", fmt.Errorf("PIA token from %s: %w", tokenURL, err)
	}
	if r.Token == "" {
		return "", fmt.Errorf("PIA token from %s: empty token", tokenURL)
	}
	return r.Token, nil
}

// dipInfo is a dedicated IP's server.
type dipInfo struct {
	Status string `json:"status"`
	IP     string `json:"ip"`
	CN     string `json:"cn"`
	ID     string `json:"id"`
}

func fetchDIP(ctx context.Context, c *http.Client, dipURL, token, dip string) (dipInfo, error) {
	body, _ := json.Marshal(map[string][]string{"tokens": {dip}})
	var r []dipInfo
	_, err := getJSON(ctx, c, "POST", dipURL, strings.NewReader(string(body)),
		map[string]string{"Content-Type": "application/json", "Authorization": "Token " + token}, &r)
	if err != nil {
		return dipInfo{}, fmt.Errorf("PIA dedicated IP: %w", err)
	}
	if len(r) == 0 || r[0].Status != "active" || !validIP(r[0].IP) || r[0].CN == "" {
		st := "no answer"
		if len(r) > 0 {
			st = r[0].Status
		}
		return dipInfo{}, fmt.Errorf("PIA did not accept the dedicated IP token (status %q)", st)
	}
	return r[0], nil
}

// addKeyReply is addKey's answer.
type addKeyReply struct {
	Status     string   `json:"status"`
	Message    string   `json:"message"`
	ServerKey  string   `json:"server_key"`
	ServerPort int      `json:"server_port"`
	ServerIP   string   `json:"server_ip"`
	ServerVIP  string   `json:"server_vip"`
	PeerIP     string   `json:"peer_ip"`
	PeerPubkey string   `json:"peer_pubkey"`
	DNSServers []string `json:"dns_servers"`
}

// signature is getSignature's answer, with the payload decoded.
type signature struct {
	Payload   string    `json:"payload"`
	Signature string    `json:"signature"`
	Port      uint16    `json:"port"`
	Expires   time.Time `json:"expires_at"`
	// Server is the cn of the server that signed it: a payload binds only
	// there.
	Server string `json:"server,omitempty"`
}

// decodePayload reads the base64 JSON payload: token, port, expires_at.
func decodePayload(b64 string) (uint16, time.Time, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("PIA payload: %w", err)
	}
	var p struct {
		Port    int    `json:"port"`
		Expires string `json:"expires_at"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, time.Time{}, fmt.Errorf("PIA payload: %w", err)
	}
	if p.Port <= 0 || p.Port > 65535 {
		return 0, time.Time{}, fmt.Errorf("PIA payload: port %d", p.Port)
	}
	exp, err := time.Parse(time.RFC3339Nano, p.Expires)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("PIA payload: expires_at %q: %w", p.Expires, err)
	}
	return uint16(p.Port), exp, nil
}

// parseSignature reads getSignature's answer.
func parseSignature(b []byte) (signature, error) {
	var r struct {
		Status    string `json:"status"`
		Message   string `json:"message"`
		Payload   string `json:"payload"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return signature{}, fmt.Errorf("PIA getSignature: %w", err)
	}
	if r.Status != "OK" {
		return signature{}, fmt.Errorf("PIA getSignature: status %q: %s", r.Status, r.Message)
	}
	port, exp, err := decodePayload(r.Payload)
	if err != nil {
		return signature{}, err
	}
	return signature{Payload: r.Payload, Signature: r.Signature, Port: port, Expires: exp}, nil
}

// errPortBusy means bindPort answered that the port is taken: get a new
// signature.
var errPortBusy = errors.New("PIA says the port is busy")

// errExpired means the payload can no longer be bound.
var errExpired = errors.New("PIA says the payload expired")
