package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/api"
	"github.com/vpnfwd/vpnfwd/daemon"
	"github.com/vpnfwd/vpnfwd/state"
)

// apiClient talks to a running vpnfwd's control API.
type apiClient struct {
	addr  string
	token string
	http  *http.Client
}

// apiFlags adds --api and --api-token-file, defaulting to the VPNFWD_API
// and VPNFWD_API_TOKEN_FILE environment variables, then to the owner's
// socket in the state directory when a vpnfwd answers there (the health
// check's way in, which the pod's other programs cannot crowd out), then
// to the TCP API.
func apiFlags(fs *flag.FlagSet, env *cliEnv) (*string, *string) {
	def, ok := env.lookupEnv("VPNFWD_API")
	if !ok || def == "" {
		def = "127.0.0.1:9070"
		if gluetun := gluetunAPI(env); gluetun != "" {
			def = gluetun
		}
		dir, _ := env.lookupEnv("VPNFWD_STATE_DIR")
		if dir == "" {
			dir = state.DefaultPath()
		}
		if dir != "" && daemon.OwnSocketAnswers(dir) {
			def = "unix:" + filepath.Join(dir, daemon.OwnSocket)
		}
	}
	tok, _ := env.lookupEnv("VPNFWD_API_TOKEN_FILE")
	return fs.String("api", def, "control API `ADDR` of the running vpnfwd, or unix:PATH"),
		fs.String("api-token-file", tok, "`FILE` holding the API token")
}

// gluetunAPI is where vpnfwd run with gluetun's environment serves its
// control server (HTTP_CONTROL_SERVER_ADDRESS, :8000 by default), as seen
// from this host: "" when the environment is not gluetun's.
func gluetunAPI(env *cliEnv) string {
	if _, ok := env.lookupEnv("VPN_SERVICE_PROVIDER"); !ok {
		return ""
	}
	port := "8000"
	if a, ok := env.lookupEnv("HTTP_CONTROL_SERVER_ADDRESS"); ok {
		if _, p, err := net.SplitHostPort(a); err == nil && p != "" {
			port = p
		}
	}
	return net.JoinHostPort("127.0.0.1", port)
}

func newAPIClient(addr, tokenFile string) (*apiClient, error) {
	token, err := api.ReadToken(tokenFile)
	if err != nil {
		return nil, err
	}
	// "http://127.0.0.1:9070/" as a browser writes it is the same address.
	if rest, ok := strings.CutPrefix(addr, "http://"); ok {
		addr = strings.TrimRight(rest, "/")
	}
	if strings.Contains(addr, "://") {
		return nil, fmt.Errorf("--api %s: give IP:PORT, http://IP:PORT or unix:PATH (the control API speaks plain HTTP)", addr)
	}
	tr := &http.Transport{Proxy: nil}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		addr = "vpnfwd"
	}
	return &apiClient{addr: addr, token: token, http: &http.Client{Transport: tr, Timeout: 5 * time.Second}}, nil
}

// text fetches path without credentials and returns its code and body.
func (c *apiClient) text(ctx context.Context, path string) (int, string, error) {
	code, b, err := c.do(ctx, path, false)
	return code, strings.TrimSpace(string(b)), err
}

// do fetches path (with the token when auth) and reads the body.
func (c *apiClient) do(ctx context.Context, path string, auth bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if auth && c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("no vpnfwd answering on %s (is 'vpnfwd up' running? --api ADDR picks another): %w", c.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// get fetches path and decodes JSON into v; it returns the status code.
func (c *apiClient) get(ctx context.Context, path string, v any) (int, error) {
	code, b, err := c.do(ctx, path, true)
	if err != nil {
		return code, err
	}
	if code == http.StatusUnauthorized {
		return code, fmt.Errorf("the API at %s wants a token: --api-token-file FILE", c.addr)
	}
	if v != nil && (code < 500 || code == http.StatusServiceUnavailable) {
		if err := json.Unmarshal(b, v); err != nil {
			return code, fmt.Errorf("reading answer from %s: %w", c.addr, err)
		}
	}
	return code, nil
}
