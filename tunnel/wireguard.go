package tunnel

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// WireGuard is the tunnel's configuration, from a wg-quick file or inline
// TOML.
type WireGuard struct {
	// Config is the path of a wg-quick file; its contents fill the fields
	// below (inline TOML fields are then not allowed).
	Config     string     `toml:"config"`
	PrivateKey PrivateKey `toml:"private_key"`
	Address    []Prefix   `toml:"address"`
	DNS        []Addr     `toml:"dns"`
	MTU        int        `toml:"mtu"`
	ListenPort int        `toml:"listen_port"`
	// Name is the device's name for WireGuard's tools: its control socket
	// is NAME.sock, so `wg show NAME` works ("vpnfwd" when empty; "-"
	// serves none).
	Name string `toml:"name"`
	// Tun, when set, runs the kernel data plane: wireguard-go over a
	// kernel TUN of this name in the current network namespace, with
	// every route through it (vpnfwd up --tun NAME).
	Tun   string `toml:"tun"`
	Peers []Peer `toml:"peer"`
	// Server, when set, names the server for the log and status (a server
	// list's hostname and city); else the wg-quick file names it.
	Server string `toml:"-"`
}

// Peer is one [Peer] section.
type Peer struct {
	PublicKey           Key        `toml:"public_key"`
	PresharedKey        PrivateKey `toml:"preshared_key"`
	Endpoint            Endpoint   `toml:"endpoint"`
	AllowedIPs          []Prefix   `toml:"allowed_ips"`
	PersistentKeepalive int        `toml:"persistent_keepalive"`
}

// Validate checks that the tunnel can be brought up.
func (w *WireGuard) Validate() error {
	var errs []error
	if w.PrivateKey.IsZero() {
		errs = append(errs, errors.New("no PrivateKey in [Interface]"))
	}
	if len(w.Address) == 0 {
		errs = append(errs, errors.New("no Address in [Interface]"))
	}
	if len(w.Peers) == 0 {
		errs = append(errs, errors.New("no [Peer] section"))
	}
	if w.MTU != 0 && (w.MTU < 576 || w.MTU > 65535) {
		errs = append(errs, fmt.Errorf("mtu %d: want a number from 576 to 65535 (or none: 1420)", w.MTU))
	}
	if w.ListenPort < 0 || w.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listen_port %d is not a port", w.ListenPort))
	}
	for i, p := range w.Peers {
		if p.PublicKey.IsZero() {
			errs = append(errs, fmt.Errorf("peer %d: no PublicKey", i+1))
		}
		if p.Endpoint == "" {
			errs = append(errs, fmt.Errorf("peer %d: no Endpoint (vpnfwd dials out to the VPN server)", i+1))
		}
		if len(p.AllowedIPs) == 0 {
			errs = append(errs, fmt.Errorf("peer %d: no AllowedIPs", i+1))
		}
	}
	return errors.Join(errs...)
}

// Addresses returns the tunnel addresses as netip prefixes.
func (w *WireGuard) Addresses() []netip.Prefix {
	out := make([]netip.Prefix, len(w.Address))
	for i, a := range w.Address {
		out[i] = netip.Prefix(a)
	}
	return out
}

// DNSServers returns the DNS servers as netip addresses.
func (w *WireGuard) DNSServers() []netip.Addr {
	out := make([]netip.Addr, len(w.DNS))
	for i, a := range w.DNS {
		out[i] = netip.Addr(a)
	}
	return out
}

// HasInline reports whether any tunnel field was set inline.
func (w *WireGuard) HasInline() bool {
	return !w.PrivateKey.IsZero() || len(w.Address) > 0 || len(w.Peers) > 0 || len(w.DNS) > 0
}

// Stats are the WireGuard device's counters for its first peer (the
// device reads them; the session and status show them).
type Stats struct {
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
	Endpoint      string
}
