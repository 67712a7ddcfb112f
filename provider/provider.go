// Package provider defines how vpnfwd gets a forwarded port: a Provider
// obtains a Lease through the tunnel, keeps it alive, and reports every
// change. One sub-package per provider implements it; none of them touch
// gVisor, they get a Dialer.
package provider

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

// Port is one forwarded port: Public is what the internet connects to (and
// what consumers are told); Local is the port the traffic arrives at inside
// the tunnel (often the same).
type Port struct {
	Public uint16 `json:"public"`
	Local  uint16 `json:"local"`
	// Protocol is "tcp" or "udp" when the port forwards only that one (a
	// gateway that gave TCP and UDP different ports); "" for both.
	Protocol string `json:"protocol,omitempty"`
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
	// Error, when set, says the provider's last attempt failed and what
	// to do about it; Ports is then what is still held (maybe nothing).
	Error string `json:"error,omitempty"`
	// Note, when set, is a recovery step this report completes ("re-mapped
	// port 40001 after the gateway restarted"), for status and events.
	Note string `json:"-"`
}

// Failed is the lease l, still held, reporting that an attempt failed.
func (l Lease) Failed(err error) Lease {
	l.Error = err.Error()
	return l
}

// Held reports whether the lease has a port.
func (l Lease) Held() bool { return len(l.Ports) > 0 }

// PublicPorts lists the public ports, never 0, each once (a TCP-only and a
// UDP-only port count as two).
func (l Lease) PublicPorts() []uint16 {
	var out []uint16
	for _, p := range l.Ports {
		if p.Public != 0 && !slices.Contains(out, p.Public) {
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
	// Dialer connects through the tunnel.
	Dialer Dialer
	// Direct connects outside the tunnel, for what must happen before it
	// exists (PIA's login and key registration); its sockets carry the
	// kill switch's mark.
	Direct     Dialer
	Log        *slog.Logger
	Tunnel     []netip.Prefix // tunnel addresses (set once the tunnel exists)
	DNS        []netip.Addr   // the tunnel's DNS servers
	Settings   Settings       // the provider's options, checked by Info.Check
	TargetPort uint16         // the local service's port, 0 if "same as forwarded"
	LastPorts  []uint16
	// State remembers tokens and payloads across restarts.
	State Store
	// PrivateKey, when set, is the WireGuard key to use instead of a fresh
	// one (providers that register keys).
	PrivateKey tunnel.PrivateKey
	// Roots, when set, is trusted for the providers' HTTPS APIs instead
	// of the system store (a private CA); nil: the system store, which
	// SSL_CERT_FILE can point elsewhere.
	Roots *x509.CertPool
}

// Store keeps small JSON values across restarts (state.Dir).
type Store interface {
	Load(name string, v any) error
	Save(name string, v any) error
	Delete(name string)
}

// NoState remembers nothing.
type NoState struct{}

func (NoState) Load(string, any) error { return errors.New("no state directory") }
func (NoState) Save(string, any) error { return nil }
func (NoState) Delete(string)          {}

// TunnelMaker is a provider that makes the WireGuard configuration itself
// (PIA registers a fresh key with the chosen server). The daemon calls
// MakeTunnel before the tunnel exists, then SetTunnel and Run once it is
// up.
type TunnelMaker interface {
	MakeTunnel(ctx context.Context) (tunnel.WireGuard, error)
	// SetTunnel tells the provider the tunnel's addresses and DNS.
	SetTunnel(addrs []netip.Prefix, dns []netip.Addr)
}

// Rekeyer is a TunnelMaker that can register a fresh key when the tunnel
// stays dead (the server forgot ours, or is gone): Rekey returns the new
// tunnel, on another server of the same region when there is one, and the
// provider's Run carries on there.
type Rekeyer interface {
	Rekey(ctx context.Context) (tunnel.WireGuard, error)
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

// Prober is a provider with a cheap request through the tunnel that its
// gateway answers (NAT-PMP: the held mapping asked for again). The
// session calls Probe every few seconds as the tunnel's liveness check; an
// error means nothing came back through the tunnel. The Check says what
// the answer proved about the port itself. A provider may act on the
// answer (a gateway that restarted or forgot the mapping: map again at
// once).
type Prober interface {
	Probe(ctx context.Context) (Check, error)
}

// Check is what a liveness check learned about the forwarded port, beyond
// "the tunnel answers". The zero Check proves nothing either way.
type Check struct {
	// Verified: the answer proved the port is forwarded now; Method says
	// how ("mapping re-asserted").
	Verified bool
	Method   string
	// Dead, when set, says the port is known not to work and why (the
	// gateway no longer maps it, or refused to keep it). The provider
	// has already started mapping again.
	Dead string
}

// Guarded is a provider that talks to control endpoints on the VPN's side
// (a NAT-PMP gateway, PIA's port API) that no local program may reach
// through vpnfwd's proxies or, in tun and exec mode, at all: a "delete all
// mappings" from anyone else would kill the port. ControlEndpoints may
// change (PIA moves to another server); callers ask again when it does.
type Guarded interface {
	ControlEndpoints() []Endpoint
}

// Endpoint is one control endpoint: a network ("tcp" or "udp") and an
// address.
type Endpoint struct {
	Network string
	Addr    netip.AddrPort
}

// Mover is a provider told that the tunnel moved to another server of the
// same provider (failover between wg-quick files): what it held lives on
// the old server, so it gets a port on the new one at once (asking for the
// same number where the provider lets it choose). It must not block.
type Mover interface {
	Moved()
}

// Refresher is a provider that can renew at once instead of at its next
// renewal; the session calls Refresh after the tunnel came back from an
// outage, when the gateway may have lost the mapping. It must not block.
type Refresher interface {
	Refresh()
}

// Info describes a provider for `vpnfwd providers` and builds it.
type Info struct {
	Name    string
	Summary string
	Needs   string
	Port    string // "random", "fixed", ...
	Renewal string
	// MakesTunnel: the provider builds the WireGuard configuration itself
	// (no wg-quick file needed).
	MakesTunnel bool
	// Options are the settings it takes (TOML keys of [provider], flags,
	// environment variables); config checks them with Check.
	Options []Option
	// LoginPorts lists the TCP ports its login reaches outside the tunnel
	// before it exists; the kill switch lets vpnfwd's own sockets to them
	// out. Nil: none.
	LoginPorts func(Settings) []uint16
	New        func(Env) (Provider, error)
}
