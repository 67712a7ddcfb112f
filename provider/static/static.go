// Package static is for providers where the user reserves a port on the
// provider's web site (AirVPN, Windscribe, TorGuard, ...): vpnfwd is told the
// port and holds it for as long as it runs.
package static

import (
	"context"
	"errors"
	"fmt"

	"github.com/vpnfwd/vpnfwd/provider"
)

// Info describes the provider.
var Info = provider.Info{
	Name:    "static",
	Summary: "a port you reserved on the provider's site (AirVPN, Windscribe, TorGuard, ...)",
	Needs:   "a wg-quick file; --port N[,N...]",
	Port:    "fixed",
	Renewal: "none",
	Options: Options,
	New:     New,
}

// Options are the reserved-port providers' settings.
var Options = []provider.Option{
	{Key: "ports", Flag: "port", Kind: provider.Ports, Usage: "forwarded `PORT`[,PORT...] you reserved with the provider"},
	{Key: "port", Kind: provider.Ports, Usage: "one forwarded port (TOML; same as ports = [N])"},
}

// Reserved-port providers: static with their own help and checks.
var (
	AirVPN = provider.Info{
		Name:    "airvpn",
		Summary: "AirVPN: a port you reserve in Client Area > Ports (valid on every server, permanent)",
		Needs:   "a wg-quick file from AirVPN's Config Generator; --port N (the reserved port, 1024 or above)",
		Port:    "fixed, yours", Renewal: "none", Options: Options,
		New: variant("airvpn", "reserve one in AirVPN's Client Area > Ports", 1024),
	}
	Windscribe = provider.Info{
		Name:    "windscribe",
		Summary: "Windscribe (Pro): a port you set up in My Account > Port Forwarding",
		Needs:   "a wg-quick file for the static-IP or ephemeral-port location; --port N",
		Port:    "fixed (ephemeral ports expire after 7 days on Windscribe's side)", Renewal: "none", Options: Options,
		New: variant("windscribe", "request one under Port Forwarding in your Windscribe account", 1),
	}
	TorGuard = provider.Info{
		Name:    "torguard",
		Summary: "TorGuard: ports you request in Tools > Port Forward Request",
		Needs:   "a wg-quick file for the server the ports were requested on; --port N[,N]",
		Port:    "fixed per server", Renewal: "none", Options: Options,
		New: variant("torguard", "request them in TorGuard's Tools > Port Forward Request, for this server", 1),
	}
)

// variant is New with a provider's name, hint and lowest allowed port.
func variant(name, hint string, lowest int) func(provider.Env) (provider.Provider, error) {
	return func(env provider.Env) (provider.Provider, error) {
		p, err := New(env)
		if err != nil {
			return nil, fmt.Errorf("%s needs the port you reserved: --port N (%s)", name, hint)
		}
		sp := p.(*Provider)
		for _, port := range sp.ports {
			if int(port) < lowest {
				return nil, fmt.Errorf("%s ports are %d or above; %d is not one (%s)", name, lowest, port, hint)
			}
		}
		sp.name = name
		return sp, nil
	}
}

// Provider holds fixed ports.
type Provider struct {
	ports []uint16
	name  string
}

// New reads the ports from the port and ports settings.
func New(env provider.Env) (provider.Provider, error) {
	var ports []uint16
	for _, key := range []string{"port", "ports"} {
		p, err := env.Settings.Ports(key)
		if err != nil {
			return nil, fmt.Errorf("provider.%s: %w", key, err)
		}
		ports = append(ports, p...)
	}
	if len(ports) == 0 {
		return nil, errors.New("the static provider needs the port you reserved with your VPN provider: --port N (or provider.port in the config)")
	}
	return &Provider{ports: ports}, nil
}

// Run reports the ports once and holds them until ctx ends.
func (p *Provider) Run(ctx context.Context, report func(provider.Lease)) error {
	name := p.name
	if name == "" {
		name = "static"
	}
	l := provider.Lease{Provider: name, Protocols: []string{"tcp", "udp"}}
	for _, n := range p.ports {
		l.Ports = append(l.Ports, provider.Port{Public: n, Local: n})
	}
	report(l)
	<-ctx.Done()
	return nil
}
