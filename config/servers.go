package config

import (
	"fmt"
	"math/rand/v2"
	"net"

	"github.com/vpnfwd/vpnfwd/serverlist"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// ServerList is the [servers] section: a server list (gluetun's) and the
// filters that pick from it.
type ServerList struct {
	List      string   `toml:"list"`
	Countries []string `toml:"countries"`
	Regions   []string `toml:"regions"`
	Cities    []string `toml:"cities"`
	Hostnames []string `toml:"hostnames"`
	Names     []string `toml:"names"`
	// PortForwardOnly: nil means the provider's default (on for
	// protonvpn, as gluetun with port forwarding on).
	PortForwardOnly *bool `toml:"port_forward_only"`
	FreeOnly        bool  `toml:"free_only"`
	SecureCoreOnly  bool  `toml:"secure_core_only"`
	TorOnly         bool  `toml:"tor_only"`
	StreamOnly      bool  `toml:"stream_only"`
	// Port is the servers' WireGuard port (51820 when 0).
	Port uint16 `toml:"-"`
	// AllowedIPs are what goes through each server (everything when
	// empty).
	AllowedIPs []tunnel.Prefix `toml:"-"`
}

// gluetunProviderName is the provider's name in gluetun's list.
var gluetunProviderName = map[string]string{"protonvpn": "protonvpn", "pia": "private internet access", "privatevpn": "privatevpn",
	"perfectprivacy": "perfect privacy", "airvpn": "airvpn", "windscribe": "windscribe", "torguard": "torguard"}

// filter is the selection the section asks for.
func (s ServerList) filter(provider string) serverlist.Filter {
	pf := provider == "protonvpn" || provider == "pia"
	if s.PortForwardOnly != nil {
		pf = *s.PortForwardOnly
	}
	return serverlist.Filter{Countries: s.Countries, Regions: s.Regions, Cities: s.Cities, Hostnames: s.Hostnames, Names: s.Names,
		PortForwardOnly: pf, FreeOnly: s.FreeOnly, SecureCoreOnly: s.SecureCoreOnly, TorOnly: s.TorOnly, StreamOnly: s.StreamOnly}
}

// pickFirst is where the walk through the matching servers starts:
// anywhere, as gluetun picks a random one (tests fix it).
var pickFirst = func(n int) int { return rand.IntN(n) }

// loadServerList fills c.Servers from the server list: one tunnel per
// matching server, each the [wireguard] section's key and addresses with
// that server as its peer, starting at a random one and going round the
// rest in the list's order (the failover order).
func (c *Config) loadServerList() error {
	sl := c.ServerList
	name, ok := gluetunProviderName[c.Provider.Name]
	if !ok {
		name = c.Provider.Name
	}
	all, err := serverlist.Read(sl.List, name)
	if err != nil {
		return err
	}
	f := sl.filter(c.Provider.Name)
	picked, err := serverlist.Select(all, f)
	if err != nil {
		return fmt.Errorf("%s: %w; widen the filter (--server-countries and the others, gluetun's SERVER_*), or give the server's endpoint and public key", sl.List, err)
	}
	w := c.WireGuard
	if w.PrivateKey.IsZero() || len(w.Address) == 0 {
		return fmt.Errorf("a server list (%s) gives the servers, not the key: give the private key and the addresses ([wireguard] private_key and address, or gluetun's WIREGUARD_PRIVATE_KEY and WIREGUARD_ADDRESSES)", sl.List)
	}
	port := sl.Port
	if port == 0 {
		port = 51820
	}
	allowed := sl.AllowedIPs
	if len(allowed) == 0 {
		for _, a := range []string{"0.0.0.0/0", "::/0"} {
			p, _ := tunnel.ParsePrefix(a)
			allowed = append(allowed, p)
		}
	}
	first := pickFirst(len(picked))
	c.Servers = nil
	for i := range picked {
		s := picked[(first+i)%len(picked)]
		var peer tunnel.Peer
		if err := peer.PublicKey.UnmarshalText([]byte(s.WgPubKey)); err != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: server %s left out: its public key: %v", sl.List, s.Name(), err))
			continue
		}
		err := peer.Endpoint.UnmarshalText([]byte(net.JoinHostPort(s.IPs[0].String(), fmt.Sprint(port))))
		if err == nil {
			err = checkEndpoint(peer.Endpoint) // as a wg-quick file's Endpoint
		}
		if err != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: server %s left out: %v", sl.List, s.Name(), err))
			continue
		}
		peer.AllowedIPs = allowed
		t := w
		t.Peers = []tunnel.Peer{peer}
		t.Server = s.Name()
		c.Servers = append(c.Servers, t)
	}
	if len(c.Servers) == 0 {
		return fmt.Errorf("%s: none of the %d servers matching %s can be used (see the warnings)", sl.List, len(picked), f)
	}
	c.WireGuard = c.Servers[0]
	c.Notes = append(c.Notes, fmt.Sprintf("server list %s: %d of %d WireGuard servers match %s; starting on %s, then the next on failover", sl.List, len(c.Servers), len(all), f, c.Servers[0].Server))
	return nil
}
