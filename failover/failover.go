// Package failover moves the tunnel to another server when the session
// says it must: the next wg-quick file's (or server list's) server, round
// the list, or, for a provider that registers keys (PIA), a fresh key on
// the region's next server. The session decides when (session/failover.go)
// and calls Move on a goroutine it owns; a Mover holds how: the device's
// key and peer, the data plane's addresses, the provider's view of the
// tunnel, and the guard on its control endpoints, in that order. Nothing
// here calls back up into the daemon or the session.
package failover

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// Device is the WireGuard device as a move drives it (*wg.Device):
// Reconfigure puts it on another key and peer (the kill switch's endpoint
// follows).
type Device interface {
	Reconfigure(ctx context.Context, w tunnel.WireGuard) error
}

// Plane is the data plane's tunnel addresses.
type Plane interface {
	Addresses() []netip.Prefix
	SetAddresses([]netip.Prefix) error
}

// Config is what a Mover works on.
type Config struct {
	Device Device
	Plane  Plane
	// Guard, when set, keeps the provider's control endpoints to vpnfwd
	// again after a move (they may have moved with the server); it logs
	// its own failure.
	Guard func(ctx context.Context)
	// Caps are the provider's optional interfaces (provider.CapsOf).
	Caps provider.Caps
	// Servers are the servers to move round, the first in use at start
	// (config's Servers).
	Servers []tunnel.WireGuard
}

// Mover moves the tunnel to another server. Move is called by one
// goroutine at a time (the session never starts a move before the last
// one ended).
type Mover struct {
	c Config
	// server is the index in c.Servers of the server in use (next-server
	// moves only); only Move changes it.
	server int
}

// New returns the Mover for c: a fresh key when the provider can rekey,
// else the next server when there are several; nil when neither, and the
// tunnel stays where it is (leave session.Options.Failover unset then: a
// nil *Mover in it is not a nil interface).
func New(c Config) *Mover {
	if c.Caps.Rekeyer == nil && len(c.Servers) < 2 {
		return nil
	}
	return &Mover{c: c}
}

// Rekeys reports whether a move registers a fresh key with the provider
// rather than going to the next server of the list.
func (m *Mover) Rekeys() bool { return m.c.Caps.Rekeyer != nil }

// Move moves the tunnel and says where to, for the log and events
// ("server 2 of 3 (…), endpoint …"). On error the tunnel may be half
// moved (the device on the new server, the addresses not yet); the next
// Move starts over: the same server again, or a fresh key again.
func (m *Mover) Move(ctx context.Context) (string, error) {
	if m.Rekeys() {
		return m.rekey(ctx)
	}
	return m.nextServer(ctx)
}

// rekey has the provider register a fresh key and moves the tunnel to
// it: the device's key and peer, the data plane's address, the
// provider's view.
func (m *Mover) rekey(ctx context.Context) (string, error) {
	w, err := m.c.Caps.Rekeyer.Rekey(ctx)
	if err != nil {
		return "", err
	}
	if err := m.c.Device.Reconfigure(ctx, w); err != nil {
		return "", err
	}
	if err := m.c.Plane.SetAddresses(w.Addresses()); err != nil {
		return "", err
	}
	if tm := m.c.Caps.TunnelMaker; tm != nil {
		tm.SetTunnel(w.Addresses(), w.DNSServers())
	}
	m.guard(ctx)
	return fmt.Sprintf("endpoint %s, address %s", w.Peers[0].Endpoint, prefixes(w.Addresses())), nil
}

// nextServer moves the tunnel to the next server (round the list): the
// device's key and peer, the data plane's addresses when they differ,
// the provider (which gets a port there).
func (m *Mover) nextServer(ctx context.Context) (string, error) {
	servers := m.c.Servers
	next := (m.server + 1) % len(servers)
	w := servers[next]
	if err := m.c.Device.Reconfigure(ctx, w); err != nil {
		return "", fmt.Errorf("server %d of %d (%s): %w", next+1, len(servers), w.Config, err)
	}
	if !slices.Equal(w.Addresses(), m.c.Plane.Addresses()) {
		if err := m.c.Plane.SetAddresses(w.Addresses()); err != nil {
			return "", err
		}
	}
	m.server = next
	if mv := m.c.Caps.Mover; mv != nil {
		mv.Moved()
	}
	m.guard(ctx)
	return fmt.Sprintf("server %d of %d (%s), endpoint %s", next+1, len(servers), serverName(w), w.Peers[0].Endpoint), nil
}

func (m *Mover) guard(ctx context.Context) {
	if m.c.Guard != nil {
		m.c.Guard(ctx)
	}
}

// serverName names a server: as the server list does (hostname, city),
// else by its wg-quick file.
func serverName(w tunnel.WireGuard) string {
	if w.Server != "" {
		return w.Server
	}
	return filepath.Base(w.Config)
}

// ServerAt names the server of servers whose endpoint is ep, when a
// server list chose them ("" otherwise): status names the server the
// session's snapshot is on. It reads no state of a running Mover.
func ServerAt(servers []tunnel.WireGuard, ep netip.AddrPort) string {
	for _, w := range servers {
		if w.Server == "" || len(w.Peers) == 0 {
			continue
		}
		h, p := w.Peers[0].Endpoint.HostPort()
		if a, err := netip.ParseAddr(h); err == nil && netip.AddrPortFrom(a, p) == ep {
			return w.Server
		}
	}
	return ""
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
