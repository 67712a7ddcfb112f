package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// QBittorrentOptions are qBittorrent's opt-in extras for a bridged setup.
type QBittorrentOptions struct {
	// MultiConnections sets enable_multi_connections_from_same_ip: peers
	// that arrive through the local bridge can share one source address.
	MultiConnections bool
	// SOCKS5 ("127.0.0.1:1080") points qBittorrent's proxy at vpnfwd's, for
	// peers, trackers and DHT: its outbound traffic then uses the tunnel.
	SOCKS5 string
	// Interface, when set, binds qBittorrent to that network interface
	// (current_network_interface, "Network interface" in its advanced
	// settings): in tun mode the tunnel's, so qBittorrent itself refuses
	// every other link, as gluetun's users set it.
	Interface string
}

// NewQBittorrent makes a consumer for qBittorrent's Web API v2 (4.x and
// 5.x: cookie or API key, 200 "Ok." or 204/401 logins, bypass for
// localhost).
func NewQBittorrent(cc ClientConfig, opts QBittorrentOptions) *Client {
	cc.defaults()
	q := &qbittorrent{cc: cc, opts: opts, http: cc.httpClient()}
	return &Client{name: "qbittorrent:" + cc.URL, c: q, every: cc.CheckEvery, log: cc.Log}
}

type qbittorrent struct {
	cc   ClientConfig
	opts QBittorrentOptions
	http *http.Client

	mu       sync.Mutex
	failures int // consecutive refused logins
}

var errQBitAuth = errors.New("qBittorrent wants a login")

// call does one request; a 403 means "log in first".
func (q *qbittorrent) call(ctx context.Context, method, path string, form url.Values) ([]byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, q.cc.URL+path, body)
	if err != nil {
		return nil, fmt.Errorf("qBittorrent URL %q: %w", q.cc.URL, err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if key, err := q.cc.apiKey(); err != nil {
		return nil, err
	} else if key != "" && !strings.HasPrefix(path, "/api/v2/auth/") {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := q.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("qBittorrent at %s is not answering: %w", q.cc.URL, unwrapURL(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case resp.StatusCode == http.StatusForbidden && !strings.HasPrefix(path, "/api/v2/auth/"):
		return nil, errQBitAuth
	case resp.StatusCode >= 300 && !strings.HasPrefix(path, "/api/v2/auth/"):
		return nil, fmt.Errorf("qBittorrent %s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if strings.HasPrefix(path, "/api/v2/auth/") {
		return b, loginResult(resp.StatusCode, b)
	}
	return b, nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

type loginError struct {
	banned bool
	msg    string
}

func (e *loginError) Error() string { return e.msg }

// loginResult reads a login answer. Up to 5.1: 200 "Ok." or 200 "Fails.";
// from 5.2: 204 (or 200, empty) on success, 401 on bad credentials; 403
// when the address is banned. The cookie, not the body, is what counts.
func loginResult(code int, body []byte) error {
	text := strings.TrimSpace(string(body))
	switch {
	case code == http.StatusForbidden:
		return &loginError{banned: true, msg: "qBittorrent has banned this address after failed logins: " + text}
	case code == http.StatusUnauthorized || text == "Fails.":
		return &loginError{msg: "qBittorrent refused the username or password"}
	case code >= 300:
		return fmt.Errorf("qBittorrent login: HTTP %d: %s", code, text)
	}
	return nil
}

func (q *qbittorrent) login(ctx context.Context) error {
	pw, err := q.cc.password()
	if err != nil {
		return err
	}
	user := q.cc.Username
	if user == "" && pw == "" && q.cc.PasswordFile == "" {
		// No credentials given. No guess either: qBittorrent 4.6.1 and later
		// have no default password, and a wrong guess spends one of the 5
		// failed logins before qBittorrent bans the address.
		return &RetryAfter{Err: fmt.Errorf("qBittorrent at %s wants a login: give --qbittorrent-user and --qbittorrent-password-file "+
			"(qBittorrent 4.6.1 and later print a temporary password in their log at start until you set one; older ones default to admin/adminadmin), "+
			"or turn on \"bypass authentication for clients on localhost\" in its Web UI options", q.cc.URL), Delay: time.Hour}
	}
	_, err = q.call(ctx, "POST", "/api/v2/auth/login", url.Values{"username": {user}, "password": {pw}})
	var le *loginError
	if errors.As(err, &le) {
		q.mu.Lock()
		q.failures++
		n := q.failures
		q.mu.Unlock()
		delay := authBackoff(n)
		if le.banned {
			delay = time.Hour
			return &RetryAfter{Err: fmt.Errorf("%s at %s; waiting %s before trying again (restarting qBittorrent lifts the ban)", le.msg, q.cc.URL, delay), Delay: delay}
		}
		return &RetryAfter{Err: fmt.Errorf("%s at %s (user %q); not trying again for %s, since qBittorrent bans an address after 5 failed logins: check the credentials", le.msg, q.cc.URL, q.cc.Username, delay), Delay: delay}
	}
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.failures = 0
	q.mu.Unlock()
	u, _ := url.Parse(q.cc.URL)
	if len(q.http.Jar.Cookies(u)) == 0 {
		return errors.New("qBittorrent accepted the login but set no session cookie")
	}
	return nil
}

// authed runs f, logging in once if qBittorrent asks for it. With
// "bypass authentication for localhost" no login ever happens.
func (q *qbittorrent) authed(ctx context.Context, f func() ([]byte, error)) ([]byte, error) {
	b, err := f()
	if !errors.Is(err, errQBitAuth) {
		return b, err
	}
	if key, _ := q.cc.apiKey(); key != "" {
		return nil, &RetryAfter{Err: fmt.Errorf("qBittorrent at %s refused the API key", q.cc.URL), Delay: 10 * time.Minute}
	}
	if err := q.login(ctx); err != nil {
		return nil, err
	}
	b, err = f()
	if errors.Is(err, errQBitAuth) {
		return nil, fmt.Errorf("qBittorrent at %s still refuses after login (HTTP 403)", q.cc.URL)
	}
	return b, err
}

func (q *qbittorrent) prefs(ctx context.Context) (map[string]any, error) {
	b, err := q.authed(ctx, func() ([]byte, error) { return q.call(ctx, "GET", "/api/v2/app/preferences", nil) })
	if err != nil {
		return nil, err
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("qBittorrent preferences: %w", err)
	}
	return p, nil
}

// wanted lists the settings vpnfwd manages besides listen_port, in the
// types this qBittorrent uses (4.5: proxy_type 2; 4.6+: "SOCKS5").
func (q *qbittorrent) wanted(p map[string]any) map[string]any {
	w := map[string]any{"random_port": false, "upnp": false}
	if q.opts.Interface != "" {
		w["current_network_interface"] = q.opts.Interface
	}
	if q.opts.MultiConnections {
		w["enable_multi_connections_from_same_ip"] = true
	}
	if q.opts.SOCKS5 != "" {
		host, port, _ := strings.Cut(q.opts.SOCKS5, ":")
		var n int
		fmt.Sscan(port, &n)
		if _, isNum := p["proxy_type"].(float64); isNum {
			w["proxy_type"] = float64(2)
		} else {
			w["proxy_type"] = "SOCKS5"
			w["proxy_bittorrent"] = true
		}
		// Trackers (and names) through the tunnel, peers not: libtorrent
		// closes its listening sockets while peer connections are proxied
		// (seen with qbittorrent-nox 4.5 / libtorrent 2.0: the port stops
		// listening the moment proxy_peer_connections is true), so the
		// forwarded port would bring nobody in. Outgoing peer connections
		// then need the kill switch to stay private; config requires it.
		w["proxy_ip"], w["proxy_port"], w["proxy_peer_connections"] = host, float64(n), false
		w["proxy_hostname_lookup"] = true
	}
	return w
}

// Current implements portClient.
func (q *qbittorrent) Current(ctx context.Context) (int, bool, error) {
	p, err := q.prefs(ctx)
	if err != nil {
		return 0, false, err
	}
	port, ok := p["listen_port"].(float64)
	if !ok {
		return 0, false, errors.New("qBittorrent preferences have no listen_port")
	}
	settled := true
	for k, v := range q.wanted(p) {
		if cur, ok := p[k]; ok && cur != v {
			settled = false
		}
	}
	return int(port), settled, nil
}

// Set implements portClient.
func (q *qbittorrent) Set(ctx context.Context, port int) error {
	p, err := q.prefs(ctx)
	if err != nil {
		return err
	}
	w := q.wanted(p)
	w["listen_port"] = port
	js, _ := json.Marshal(w)
	_, err = q.authed(ctx, func() ([]byte, error) {
		return q.call(ctx, "POST", "/api/v2/app/setPreferences", url.Values{"json": {string(js)}})
	})
	return err
}
