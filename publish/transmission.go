package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// NewTransmission makes a consumer for Transmission's RPC (3.x and 4.x:
// the session-id 409 exchange, HTTP basic auth). URL may be the web
// address (http://host:9091) or the RPC path itself. Transmission 4.1
// (rpc-version 18) speaks JSON-RPC 2.0 with snake_case names and marks the
// old request format deprecated: vpnfwd asks the server's rpc-version once
// (in the old format, which every version answers) and uses JSON-RPC 2.0
// where it is offered.
func NewTransmission(cc ClientConfig) *Client {
	cc.defaults()
	rpc := cc.URL
	if !strings.HasSuffix(rpc, "/rpc") {
		rpc += "/transmission/rpc"
	}
	t := &transmission{cc: cc, rpc: rpc, http: cc.httpClient()}
	return &Client{name: "transmission:" + cc.URL, c: t, every: cc.CheckEvery, log: cc.Log}
}

type transmission struct {
	cc   ClientConfig
	rpc  string
	http *http.Client
	mu   sync.Mutex
	sid  string
	// probed: the server's RPC version is known; jsonrpc: it is 18 or
	// later (JSON-RPC 2.0, snake_case).
	probed, jsonrpc bool
	id              int
}

// rpcVersionJSONRPC is the first rpc-version (Transmission 4.1) that
// speaks JSON-RPC 2.0.
const rpcVersionJSONRPC = 18

// snake turns the kebab-case names of the old format into 4.1's
// snake_case ones.
func snake(s string) string { return strings.ReplaceAll(s, "-", "_") }

func snakeArgs(args map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range args {
		if fields, ok := v.([]string); ok {
			var f []string
			for _, x := range fields {
				f = append(f, snake(x))
			}
			v = f
		}
		out[snake(k)] = v
	}
	return out
}

type trResponse struct {
	Result    string          `json:"result"`
	Arguments json.RawMessage `json:"arguments"`
}

// call sends one request, in the format the server prefers, and returns
// the response's arguments (old format) or result (JSON-RPC 2.0), with
// keys as the server writes them.
func (t *transmission) call(ctx context.Context, method string, args map[string]any) (json.RawMessage, error) {
	t.mu.Lock()
	jsonrpc := t.jsonrpc
	t.id++
	id := t.id
	t.mu.Unlock()
	var body []byte
	if jsonrpc {
		body, _ = json.Marshal(map[string]any{"jsonrpc": "2.0", "method": snake(method), "params": snakeArgs(args), "id": id})
	} else {
		body, _ = json.Marshal(map[string]any{"method": method, "arguments": args})
	}
	for attempt := 0; attempt < 2; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "POST", t.rpc, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("Transmission URL %q: %w", t.cc.URL, err)
		}
		req.Header.Set("Content-Type", "application/json")
		t.mu.Lock()
		if t.sid != "" {
			req.Header.Set("X-Transmission-Session-Id", t.sid)
		}
		t.mu.Unlock()
		if t.cc.Username != "" {
			pw, err := t.cc.password()
			if err != nil {
				return nil, err
			}
			req.SetBasicAuth(t.cc.Username, pw)
		}
		resp, err := t.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("Transmission at %s is not answering: %w", t.cc.URL, unwrapURL(err))
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusConflict:
			t.mu.Lock()
			t.sid = resp.Header.Get("X-Transmission-Session-Id")
			t.mu.Unlock()
			continue
		case http.StatusUnauthorized:
			return nil, &RetryAfter{Err: fmt.Errorf("Transmission at %s refused the username or password", t.cc.URL), Delay: time.Minute}
		case http.StatusForbidden:
			return nil, &RetryAfter{Err: fmt.Errorf("Transmission at %s refuses this address (rpc-whitelist in settings.json): %s",
				t.cc.URL, firstLine(b)), Delay: time.Minute}
		case http.StatusMisdirectedRequest:
			return nil, &RetryAfter{Err: fmt.Errorf("Transmission at %s refuses the host name in %s (its DNS-rebinding protection): use 127.0.0.1 or localhost in the URL, "+
				"or add the name to rpc-host-whitelist in settings.json (rpc_host_whitelist from 4.1), or set rpc-host-whitelist-enabled to false", t.cc.URL, t.cc.URL), Delay: time.Minute}
		case http.StatusOK:
		default:
			return nil, fmt.Errorf("Transmission %s: HTTP %d: %s", method, resp.StatusCode, firstLine(b))
		}
		if jsonrpc {
			var r struct {
				Result json.RawMessage `json:"result"`
				Error  *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, fmt.Errorf("Transmission %s: %w", method, err)
			}
			if r.Error != nil {
				return nil, fmt.Errorf("Transmission %s: error %d: %s", snake(method), r.Error.Code, r.Error.Message)
			}
			return r.Result, nil
		}
		var r trResponse
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("Transmission %s: %w", method, err)
		}
		if r.Result != "success" {
			return nil, fmt.Errorf("Transmission %s: %s", method, r.Result)
		}
		return r.Arguments, nil
	}
	return nil, errors.New("Transmission keeps answering 409 (session id)")
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// probe asks the server's RPC version once, in the old format every
// version answers, and picks the format to speak.
func (t *transmission) probe(ctx context.Context) error {
	t.mu.Lock()
	done := t.probed
	t.mu.Unlock()
	if done {
		return nil
	}
	raw, err := t.call(ctx, "session-get", map[string]any{"fields": []string{"rpc-version"}})
	if err != nil {
		return err
	}
	var v struct {
		Version int `json:"rpc-version"`
	}
	json.Unmarshal(raw, &v)
	t.mu.Lock()
	t.probed, t.jsonrpc = true, v.Version >= rpcVersionJSONRPC
	t.mu.Unlock()
	return nil
}

// Current implements portClient.
func (t *transmission) Current(ctx context.Context) (int, bool, error) {
	if err := t.probe(ctx); err != nil {
		return 0, false, err
	}
	raw, err := t.call(ctx, "session-get", map[string]any{"fields": []string{"peer-port", "peer-port-random-on-start", "port-forwarding-enabled"}})
	if err != nil {
		return 0, false, err
	}
	// Keys as 4.0 and earlier write them, or as 4.1 does.
	var a struct {
		Port    *int `json:"peer-port"`
		Random  bool `json:"peer-port-random-on-start"`
		Fwd     bool `json:"port-forwarding-enabled"`
		Port2   *int `json:"peer_port"`
		Random2 bool `json:"peer_port_random_on_start"`
		Fwd2    bool `json:"port_forwarding_enabled"`
	}
	if err := json.Unmarshal(raw, &a); err != nil || a.Port == nil && a.Port2 == nil {
		return 0, false, fmt.Errorf("Transmission session-get: no peer port in %s", firstLine(raw))
	}
	if a.Port == nil {
		a.Port = a.Port2
	}
	random, fwd := a.Random || a.Random2, a.Fwd || a.Fwd2
	return *a.Port, !random && !fwd, nil
}

// Set implements portClient.
func (t *transmission) Set(ctx context.Context, port int) error {
	if err := t.probe(ctx); err != nil {
		return err
	}
	_, err := t.call(ctx, "session-set", map[string]any{
		"peer-port": port, "peer-port-random-on-start": false, "port-forwarding-enabled": false,
	})
	return err
}
