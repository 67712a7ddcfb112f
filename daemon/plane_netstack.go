package daemon

import (
	"context"

	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/status"
)

// netstackPlane is the default data plane: a gVisor stack inside
// vpnfwd, and the bridge from the forwarded port on it to the local
// service. No program but vpnfwd reaches the tunnel (the proxies refuse
// the provider's endpoints themselves), and no app can ask for a port.
type netstackPlane struct {
	*netstack.Stack
	ports
}

// openNetstack makes the stack and the bridge.
func openNetstack(c planeConfig) (*netstackPlane, error) {
	w, f := c.wg, c.forward
	s, err := netstack.New(netstack.Config{Addresses: w.Addresses(), DNS: w.DNSServers(), MTU: w.MTU,
		MaxPendingHandshakes: f.MaxPendingHandshakes, MaxPendingPerSource: f.MaxPendingPerSource,
		Log: c.log.With("component", "netstack")})
	if err != nil {
		return nil, err
	}
	b := newBridge(s, f, c.target, c.log)
	s.SetTCPHandler(func(r *netstack.TCPRequest) { b.b.HandleTCP(r) })
	return &netstackPlane{Stack: s, ports: ports{target: c.target, path: b, onApps: c.appMappings}}, nil
}

// Guard: only the proxies reach the tunnel here, and their guard
// refuses the provider's endpoints.
func (p *netstackPlane) Guard(context.Context) {}

func (p *netstackPlane) Describe(s *status.Status) {
	s.Tunnel.Mode = "netstack"
	s.Tunnel.Addresses = addresses(p.Addresses())
	p.describe(s, p.Stats())
}

func (p *netstackPlane) Interface() string { return "" }

func (p *netstackPlane) Close() {
	p.Stack.Close()
	p.ports.close()
}
