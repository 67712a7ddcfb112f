package demo

import (
	"context"
	"time"

	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/tunnel"
	"github.com/vpnfwd/vpnfwd/wg"
)

// Client is a tunnel to the test server, for tests that need only the
// client side's stack (a provider, a proxy).
type Client struct {
	Config tunnel.WireGuard
	Stack  *netstack.Stack
	Device *wg.Device
}

// Connect makes a new client and brings its tunnel up.
func (s *Server) Connect() (*Client, error) {
	cfg, err := s.NewClient()
	if err != nil {
		return nil, err
	}
	st, err := netstack.New(netstack.Config{Addresses: cfg.Addresses(), DNS: cfg.DNSServers()})
	if err != nil {
		return nil, err
	}
	dev, err := wg.New(context.Background(), st.TUN(), cfg, wg.Options{})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &Client{Config: cfg, Stack: st, Device: dev}, nil
}

// Close stops the client's tunnel.
func (c *Client) Close() error { return c.Device.Close() }

// Age makes the gateway look as if it had been running for d longer, so
// that a later Restart visibly sends its epoch backwards.
func (g *Gateway) Age(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.start = g.start.Add(-d)
}
