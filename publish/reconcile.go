package publish

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/secret"
	"github.com/vpnfwd/vpnfwd/session"
)

// portClient is a torrent client whose listening port vpnfwd manages.
type portClient interface {
	// Current reads the client's listening port, and whether the other
	// settings vpnfwd manages (random port off, UPnP/NAT-PMP off, opt-in
	// extras) are as wanted.
	Current(ctx context.Context) (port int, settled bool, err error)
	// Set applies the port and those settings.
	Set(ctx context.Context, port int) error
}

// Client keeps a torrent client on the forwarded port: on every event and
// every CheckEvery it reads the client's port, sets it when it differs,
// and reads it back; it reports success only when the client really has
// the port. A lost port leaves the client alone.
type Client struct {
	name  string
	c     portClient
	every time.Duration
	log   *slog.Logger
}

// Name implements Consumer.
func (c *Client) Name() string { return c.name }

// CheckEvery implements Checker.
func (c *Client) CheckEvery() time.Duration { return c.every }

// Publish implements Consumer.
func (c *Client) Publish(ctx context.Context, ev session.Event) error {
	if len(ev.Ports()) == 0 {
		c.log.Warn("forwarded port lost; leaving the client's port setting as it is", "consumer", c.name)
		return nil
	}
	want := int(ev.Ports()[0])
	cur, settled, err := c.c.Current(ctx)
	if err != nil {
		return err
	}
	switch {
	case ev.Kind == session.KindReconnect && cur == want:
		// The tunnel came back with the same port: make the client bind
		// again (qBittorrent can stop listening after a reconnect), by
		// moving it off the port and back.
		other := want + 1
		if other > 65535 {
			other = want - 1
		}
		if err := c.c.Set(ctx, other); err != nil {
			return err
		}
		c.log.Info("re-applying the port after the tunnel reconnected", "consumer", c.name, "port", want)
	case cur == want && settled:
		return nil
	}
	if err := c.c.Set(ctx, want); err != nil {
		return err
	}
	got, settled, err := c.c.Current(ctx)
	if err != nil {
		return fmt.Errorf("reading the port back: %w", err)
	}
	if got != want {
		return fmt.Errorf("set port %d but the client reports %d", want, got)
	}
	if !settled {
		c.log.Warn("the client did not take all settings (random port / UPnP off)", "consumer", c.name)
	}
	if cur != want {
		c.log.Info("client port changed", "consumer", c.name, "from", cur, "to", want)
	}
	return nil
}

// ClientConfig is what every torrent client consumer needs.
type ClientConfig struct {
	URL          string
	Username     string
	Password     string // used when PasswordFile is empty
	PasswordFile string // re-read at every login, so rotated secrets work
	APIKey       string // qBittorrent 5.2+
	APIKeyFile   string
	CheckEvery   time.Duration // default 60 s
	Timeout      time.Duration // per request, default 10 s
	Log          *slog.Logger
}

func (cc *ClientConfig) defaults() {
	if cc.CheckEvery == 0 {
		cc.CheckEvery = time.Minute
	}
	if cc.Timeout == 0 {
		cc.Timeout = 10 * time.Second
	}
	if cc.Log == nil {
		cc.Log = slog.New(slog.DiscardHandler)
	}
	cc.URL = strings.TrimRight(cc.URL, "/")
	// Credentials in the URL (http://user:pw@host) move to the username
	// and password: the URL names the client in logs, status and metrics.
	if u, err := url.Parse(cc.URL); err == nil && u.User != nil {
		if cc.Username == "" {
			cc.Username = u.User.Username()
		}
		if pw, ok := u.User.Password(); ok && cc.Password == "" && cc.PasswordFile == "" {
			cc.Password = pw
		}
		u.User = nil
		cc.URL = u.String()
	}
}

func (cc *ClientConfig) password() (string, error) {
	return secret.Read(secret.String(cc.Password), cc.PasswordFile)
}

func (cc *ClientConfig) apiKey() (string, error) {
	k, err := secret.Read(secret.String(cc.APIKey), cc.APIKeyFile)
	return strings.TrimSpace(k), err
}

// httpClient talks to a local client: its own cookie jar, never a proxy
// from the environment, bounded time.
func (cc *ClientConfig) httpClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:       jar,
		Timeout:   cc.Timeout,
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second},
	}
}

// authBackoff is how long to wait after the client refused our
// credentials: long enough that qBittorrent's ban (5 failures) is never
// reached by vpnfwd alone.
func authBackoff(failures int) time.Duration {
	switch {
	case failures <= 1:
		return time.Minute
	case failures == 2:
		return 10 * time.Minute
	}
	return time.Hour
}
