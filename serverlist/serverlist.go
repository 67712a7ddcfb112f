// Package serverlist reads a VPN provider's servers from gluetun's server
// list (the file gluetun keeps in its volume) and selects them as gluetun
// does, so that a compose file naming only SERVER_COUNTRIES finds its
// servers without an endpoint or a public key written anywhere.
//
// The format is gluetun's (internal/models/server.go and
// internal/storage/read.go in its source): one JSON object whose keys are
// provider names ("protonvpn", "private internet access", ...), each
// {"version", "timestamp", "servers": [...]} (the single file gluetun 3.x
// writes, /gluetun/servers.json), or, in newer gluetun, {"version",
// "timestamp", "filepath"} naming a file of its own that holds the same
// object (a manifest and /gluetun/servers/<provider>.json). The selection
// is gluetun's (internal/storage/filter.go): each list filter matches
// case-insensitively against one field, the *_only flags keep the servers
// with that feature, and an empty filter keeps everything.
package serverlist

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Server is one server of the list, the fields vpnfwd uses.
type Server struct {
	VPN         string       `json:"vpn"` // "wireguard" or "openvpn"
	Country     string       `json:"country"`
	Region      string       `json:"region"`
	City        string       `json:"city"`
	Hostname    string       `json:"hostname"`
	ServerName  string       `json:"server_name"`
	WgPubKey    string       `json:"wgpubkey"`
	IPs         []netip.Addr `json:"ips"`
	PortForward bool         `json:"port_forward"`
	Free        bool         `json:"free"`
	SecureCore  bool         `json:"secure_core"`
	Tor         bool         `json:"tor"`
	Stream      bool         `json:"stream"`
}

// Name is how the log and status name a server: its hostname (or
// server name), with its city or country.
func (s Server) Name() string {
	n := s.Hostname
	if n == "" {
		n = s.ServerName
	}
	where := s.City
	if where == "" {
		where = s.Country
	}
	if where != "" {
		n += " (" + where + ")"
	}
	return n
}

// maxFile bounds a list file (gluetun's whole list is some 10 MB).
const maxFile = 64 << 20

// Read returns the WireGuard servers of provider (gluetun's name for it)
// in the list at path, in the file's order. Its errors say what was
// looked for and what to do.
func Read(path, provider string) ([]Server, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading gluetun's server list: %w (mount gluetun's volume at /gluetun, or give the server's endpoint and public key)", err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("%s is not a gluetun server list (a JSON object of providers): %w", path, err)
	}
	raw, ok := all[provider]
	if !ok {
		var have []string
		for k := range all {
			if k != "version" {
				have = append(have, k)
			}
		}
		slices.Sort(have)
		return nil, fmt.Errorf("%s has no servers for %q (it has: %s); let gluetun update it, or give the server's endpoint and public key", path, provider, strings.Join(have, ", "))
	}
	var list struct {
		Filepath string   `json:"filepath"`
		Servers  []Server `json:"servers"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s: %s's servers: %w", path, provider, err)
	}
	if list.Filepath != "" {
		// The manifest names the provider's own file; a relative name is
		// taken from the manifest's directory.
		fp := list.Filepath
		if !filepath.IsAbs(fp) {
			fp = filepath.Join(filepath.Dir(path), fp)
		}
		b, err := readFile(fp)
		if err != nil {
			return nil, fmt.Errorf("%s names %s for %s: %w", path, fp, provider, err)
		}
		list.Servers = nil
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("%s: %s's servers: %w", fp, provider, err)
		}
	}
	var out []Server
	for _, s := range list.Servers {
		if s.VPN == "wireguard" && s.WgPubKey != "" && len(s.IPs) > 0 {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has %d servers for %s and none is a WireGuard server with a public key and an address", path, len(list.Servers), provider)
	}
	return out, nil
}

// readFile reads a regular file of at most maxFile bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, maxFile>>20)
	}
	return b, nil
}

// Filter is a selection, as gluetun's SERVER_* and *_ONLY settings.
type Filter struct {
	Countries, Regions, Cities, Hostnames, Names []string
	PortForwardOnly, FreeOnly, SecureCoreOnly    bool
	TorOnly, StreamOnly                          bool
}

// String says what the filter asks for, in gluetun's words.
func (f Filter) String() string {
	var parts []string
	list := func(k string, v []string) {
		if len(v) > 0 {
			parts = append(parts, k+"="+strings.Join(v, ","))
		}
	}
	flag := func(k string, on bool) {
		if on {
			parts = append(parts, k+"=on")
		}
	}
	list("SERVER_COUNTRIES", f.Countries)
	list("SERVER_REGIONS", f.Regions)
	list("SERVER_CITIES", f.Cities)
	list("SERVER_HOSTNAMES", f.Hostnames)
	list("SERVER_NAMES", f.Names)
	flag("PORT_FORWARD_ONLY", f.PortForwardOnly)
	flag("FREE_ONLY", f.FreeOnly)
	flag("SECURE_CORE_ONLY", f.SecureCoreOnly)
	flag("TOR_ONLY", f.TorOnly)
	flag("STREAM_ONLY", f.StreamOnly)
	if len(parts) == 0 {
		return "no filter"
	}
	return strings.Join(parts, " ")
}

// Keep says whether s passes f.
func (f Filter) Keep(s Server) bool {
	switch {
	case f.PortForwardOnly && !s.PortForward, f.FreeOnly && !s.Free, f.SecureCoreOnly && !s.SecureCore,
		f.TorOnly && !s.Tor, f.StreamOnly && !s.Stream:
		return false
	}
	return oneOf(s.Country, f.Countries) && oneOf(s.Region, f.Regions) && oneOf(s.City, f.Cities) &&
		oneOf(s.Hostname, f.Hostnames) && oneOf(s.ServerName, f.Names)
}

// oneOf is gluetun's filterByPossibilities: no possibilities keep
// everything; else the value must equal one, case aside.
func oneOf(v string, possible []string) bool {
	if len(possible) == 0 {
		return true
	}
	return slices.ContainsFunc(possible, func(p string) bool { return strings.EqualFold(strings.TrimSpace(p), v) })
}

// ErrNoMatch is wrapped by Select's error when no server passes.
var ErrNoMatch = errors.New("no server matches")

// Select keeps the servers that pass f, in their order. With none, its
// error says what was asked, how many servers there were, and which
// values the asked fields have in the list.
func Select(servers []Server, f Filter) ([]Server, error) {
	var out []Server
	for _, s := range servers {
		if f.Keep(s) {
			out = append(out, s)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	hint := ""
	switch {
	case len(f.Countries) > 0:
		hint = "; its countries: " + values(servers, func(s Server) string { return s.Country })
	case len(f.Cities) > 0:
		hint = "; its cities: " + values(servers, func(s Server) string { return s.City })
	case len(f.Regions) > 0:
		hint = "; its regions: " + values(servers, func(s Server) string { return s.Region })
	}
	return nil, fmt.Errorf("%w %s among %d WireGuard servers%s", ErrNoMatch, f, len(servers), hint)
}

// values lists a field's distinct values (at most 30).
func values(servers []Server, field func(Server) string) string {
	seen := map[string]bool{}
	var out []string
	for _, s := range servers {
		if v := field(s); v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	slices.Sort(out)
	if len(out) > 30 {
		out = append(out[:30], "...")
	}
	return strings.Join(out, ", ")
}
