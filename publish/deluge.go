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

// NewDeluge makes a consumer for Deluge 2.x through deluge-web's JSON-RPC
// (login, then connect the web UI to a daemon if it is not connected).
func NewDeluge(cc ClientConfig) *Client {
	cc.defaults()
	cc.URL = strings.TrimSuffix(cc.URL, "/json") // the web UI's address, with or without its JSON path
	d := &deluge{cc: cc, http: cc.httpClient()}
	return &Client{name: "deluge:" + cc.URL, c: d, every: cc.CheckEvery, log: cc.Log}
}

type deluge struct {
	cc   ClientConfig
	http *http.Client
	mu   sync.Mutex
	id   int
}

type delugeError struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
}

var errDelugeAuth = errors.New("deluge wants a login")

func (d *deluge) rpc(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	d.mu.Lock()
	d.id++
	id := d.id
	d.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"method": method, "params": params, "id": id})
	req, err := http.NewRequestWithContext(ctx, "POST", d.cc.URL+"/json", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("Deluge URL %q: %w", d.cc.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("Deluge web at %s is not answering: %w", d.cc.URL, unwrapURL(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("Deluge %s: HTTP %d: %s", method, resp.StatusCode, firstLine(b))
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *delugeError    `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("Deluge %s: %w", method, err)
	}
	if r.Error != nil {
		if r.Error.Code == 1 { // "Not authenticated"
			return nil, errDelugeAuth
		}
		return nil, fmt.Errorf("Deluge %s: %s", method, r.Error.Message)
	}
	return r.Result, nil
}

// ready logs in if needed and makes sure deluge-web is connected to a
// daemon.
func (d *deluge) ready(ctx context.Context) error {
	raw, err := d.rpc(ctx, "web.connected")
	if errors.Is(err, errDelugeAuth) {
		if err := d.login(ctx); err != nil {
			return err
		}
		raw, err = d.rpc(ctx, "web.connected")
	}
	if err != nil {
		return err
	}
	if string(raw) == "true" {
		return nil
	}
	hostsRaw, err := d.rpc(ctx, "web.get_hosts")
	if err != nil {
		return err
	}
	var hosts [][]any
	if err := json.Unmarshal(hostsRaw, &hosts); err != nil || len(hosts) == 0 {
		return fmt.Errorf("Deluge web at %s is not connected to a daemon and knows none (add one in its Connection Manager)", d.cc.URL)
	}
	var lastErr error
	for _, h := range hosts {
		id, _ := h[0].(string)
		if _, err := d.rpc(ctx, "web.connect", id); err != nil {
			lastErr = err
			continue
		}
		for range 20 {
			if raw, err := d.rpc(ctx, "web.connected"); err == nil && string(raw) == "true" {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		lastErr = fmt.Errorf("daemon %v did not connect", h[1:])
	}
	return fmt.Errorf("Deluge web at %s could not connect to a daemon: %w", d.cc.URL, lastErr)
}

func (d *deluge) login(ctx context.Context) error {
	pw, err := d.cc.password()
	if err != nil {
		return err
	}
	if pw == "" && d.cc.PasswordFile == "" {
		pw = "deluge" // deluge-web's documented default
	}
	res, err := d.rpc(ctx, "auth.login", pw)
	if err != nil {
		return err
	}
	if string(res) != "true" {
		return &RetryAfter{Err: fmt.Errorf("Deluge web at %s refused the password", d.cc.URL), Delay: time.Minute}
	}
	return nil
}

// Current implements portClient.
func (d *deluge) Current(ctx context.Context) (int, bool, error) {
	if err := d.ready(ctx); err != nil {
		return 0, false, err
	}
	raw, err := d.rpc(ctx, "core.get_config_values", []string{"listen_ports", "random_port", "upnp", "natpmp"})
	if err != nil {
		return 0, false, err
	}
	var c struct {
		Ports  []int `json:"listen_ports"`
		Random bool  `json:"random_port"`
		UPnP   bool  `json:"upnp"`
		NATPMP bool  `json:"natpmp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return 0, false, fmt.Errorf("Deluge config: %w", err)
	}
	raw, err = d.rpc(ctx, "core.get_listen_port")
	if err != nil {
		return 0, false, err
	}
	var port int
	if err := json.Unmarshal(raw, &port); err != nil {
		return 0, false, fmt.Errorf("Deluge listen port: %w", err)
	}
	settled := !c.Random && !c.UPnP && !c.NATPMP && len(c.Ports) == 2 && c.Ports[0] == port && c.Ports[1] == port
	return port, settled, nil
}

// Set implements portClient.
func (d *deluge) Set(ctx context.Context, port int) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	_, err := d.rpc(ctx, "core.set_config", map[string]any{
		"listen_ports": []int{port, port}, "random_port": false, "upnp": false, "natpmp": false,
	})
	if err != nil {
		return err
	}
	// Deluge applies listen_ports asynchronously: wait for the read-back.
	for range 30 {
		raw, err := d.rpc(ctx, "core.get_listen_port")
		if err == nil && string(raw) == fmt.Sprint(port) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil // the read-back in Publish reports the mismatch
}
