// Package static is for providers where the user reserves a port on the
// provider's web site (AirVPN, Windscribe, TorGuard, ...): vpnfwd is told the
// port and holds it for as long as it runs.
package static

import (
	"context"
	"errors"

	"github.com/vpnfwd/vpnfwd/provider"
)

// Info describes the provider.
var Info = provider.Info{
	Name:    "static",
	Summary: "a port you reserved on the provider's site (AirVPN, Windscribe, TorGuard, ...)",
	Needs:   "a wg-quick file; --port N[,N...]",
	Port:    "fixed",
	Renewal: "none",
	New:     New,
}

// Provider holds fixed ports.
type Provider struct{ ports []uint16 }

// New reads the ports from env.Config.
func New(env provider.Env) (provider.Provider, error) {
	var ports []uint16
	for _, p := range append([]int{env.Config.Port}, env.Config.Ports...) {
		if p > 0 && p < 65536 {
			ports = append(ports, uint16(p))
		}
	}
	if len(ports) == 0 {
		return nil, errors.New("the static provider needs the port you reserved with your VPN provider: --port N (or provider.port in the config)")
	}
	return &Provider{ports: ports}, nil
}

// Run reports the ports once and holds them until ctx ends.
func (p *Provider) Run(ctx context.Context, report func(provider.Lease)) error {
	l := provider.Lease{Provider: "static", Protocols: []string{"tcp", "udp"}}
	for _, n := range p.ports {
		l.Ports = append(l.Ports, provider.Port{Public: n, Local: n})
	}
	report(l)
	<-ctx.Done()
	return nil
}
