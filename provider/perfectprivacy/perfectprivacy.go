// Package perfectprivacy is Perfect Privacy's port forwarding: nothing to
// ask for; three ports follow from the tunnel address.
package perfectprivacy

import (
	"context"
	"net/netip"

	"github.com/vpnfwd/vpnfwd/provider"
)

// Info describes the provider.
var Info = provider.Info{
	Name:    "perfectprivacy",
	Summary: "Perfect Privacy: three ports derived from the tunnel address",
	Needs:   "a wg-quick file from Perfect Privacy (with port forwarding on in the member area)",
	Port:    "fixed per tunnel address: 10000+n, 20000+n, 30000+n",
	Renewal: "none",
	New:     func(env provider.Env) (provider.Provider, error) { return &Provider{env: env}, nil },
}

// Ports returns the three ports for a tunnel address: n is the low 12
// bits of (third octet × 256 + fourth octet).
func Ports(a netip.Addr) []uint16 {
	b := a.As4()
	n := (uint16(b[2])<<8 | uint16(b[3])) & 0xfff
	return []uint16{10000 + n, 20000 + n, 30000 + n}
}

// Provider holds the derived ports.
type Provider struct{ env provider.Env }

// Run implements provider.Provider.
func (p *Provider) Run(ctx context.Context, report func(provider.Lease)) error {
	ip, err := p.env.TunnelIPv4()
	if err != nil {
		return err
	}
	l := provider.Lease{Provider: "perfectprivacy", Protocols: []string{"tcp", "udp"}}
	for _, port := range Ports(ip) {
		l.Ports = append(l.Ports, provider.Port{Public: port, Local: port})
	}
	p.env.Log.Info("Perfect Privacy ports from the tunnel address", "address", ip.String(), "ports", l.PublicPorts())
	return provider.Hold(ctx, l, report)
}
