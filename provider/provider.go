// Package provider defines how vpnfwd gets a forwarded port: a Provider
// obtains a Lease through the tunnel, keeps it alive, and reports every
// change. One sub-package per provider implements it; none of them touch
// gVisor, they get a Dialer.
package provider

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
)

// Port is one forwarded port: Public is what the internet connects to (and
// what consumers are told); Local is the port the traffic arrives at inside
// the tunnel (often the same).
type Port struct {
	Public uint16 `json:"public"`
	Local  uint16 `json:"local"`
}

// Lease is what a provider currently holds. A Lease with no Ports means the
// port was lost.
type Lease struct {
	Provider  string     `json:"provider"`
	PublicIP  netip.Addr `json:"public_ip,omitzero"`
	Ports     []Port     `json:"ports"`
	Protocols []string   `json:"protocols"`
	Expires   time.Time  `json:"expires,omitzero"` // zero: does not expire
	Renewed   time.Time  `json:"renewed,omitzero"`
}

// Held reports whether the lease has a port.
func (l Lease) Held() bool { return len(l.Ports) > 0 }

// PublicPorts lists the public ports, never 0.
func (l Lease) PublicPorts() []uint16 {
	var out []uint16
	for _, p := range l.Ports {
		if p.Public != 0 {
			out = append(out, p.Public)
		}
	}
	return out
}

// SamePorts reports whether two leases forward the same ports.
func (l Lease) SamePorts(o Lease) bool { return slices.Equal(l.Ports, o.Ports) }

// Dialer connects through the tunnel.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Env is what a provider gets to work with.
type Env struct {
	Dialer     Dialer
	Log        *slog.Logger
	Tunnel     []netip.Prefix // tunnel addresses
	DNS        []netip.Addr   // the tunnel's DNS servers
	Config     config.Provider
	TargetPort uint16 // the local service's port, 0 if "same as forwarded"
	LastPorts  []uint16
}

// Provider obtains and keeps a forwarded port.
type Provider interface {
	// Run obtains a lease and keeps it until ctx ends, calling report on
	// every change (and on each renewal). When the port is lost it reports a
	// Lease with no Ports. On ctx end it releases the lease where the
	// provider allows and returns nil; it returns an error only when it
	// cannot work at all (bad configuration).
	Run(ctx context.Context, report func(Lease)) error
}

// Info describes a provider for `vpnfwd providers` and builds it.
type Info struct {
	Name    string
	Summary string
	Needs   string
	Port    string // "random", "fixed", ...
	Renewal string
	New     func(Env) (Provider, error)
}
