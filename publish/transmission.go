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
// address (http://host:9091) or the RPC path itself.
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
}

type trResponse struct {
	Result    string          `json:"result"`
	Arguments json.RawMessage `json:"arguments"`
}

func (t *transmission) call(ctx context.Context, method string, args any) (json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"method": method, "arguments": args})
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
			return nil, &RetryAfter{Err: fmt.Errorf("Transmission at %s refuses this address (rpc-whitelist / rpc-host-whitelist in settings.json): %s",
				t.cc.URL, firstLine(b)), Delay: time.Minute}
		case http.StatusOK:
		default:
			return nil, fmt.Errorf("Transmission %s: HTTP %d: %s", method, resp.StatusCode, firstLine(b))
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

// Current implements portClient.
func (t *transmission) Current(ctx context.Context) (int, bool, error) {
	raw, err := t.call(ctx, "session-get", map[string]any{"fields": []string{"peer-port", "peer-port-random-on-start", "port-forwarding-enabled"}})
	if err != nil {
		return 0, false, err
	}
	var a struct {
		Port   *int `json:"peer-port"`
		Random bool `json:"peer-port-random-on-start"`
		Fwd    bool `json:"port-forwarding-enabled"`
	}
	if err := json.Unmarshal(raw, &a); err != nil || a.Port == nil {
		return 0, false, fmt.Errorf("Transmission session-get: no peer-port in %s", firstLine(raw))
	}
	return *a.Port, !a.Random && !a.Fwd, nil
}

// Set implements portClient.
func (t *transmission) Set(ctx context.Context, port int) error {
	_, err := t.call(ctx, "session-set", map[string]any{
		"peer-port": port, "peer-port-random-on-start": false, "port-forwarding-enabled": false,
	})
	return err
}
