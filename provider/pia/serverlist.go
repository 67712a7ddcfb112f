package pia

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/secret"
)

// ServerList is PIA's vpninfo/servers/v6 document.
type ServerList struct {
	Groups  map[string][]Group `json:"groups"`
	Regions []Region           `json:"regions"`
}

// Group lists a protocol's ports.
type Group struct {
	Name  string `json:"name"`
	Ports []int  `json:"ports"`
}

// Region is one PIA region.
type Region struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Country     string              `json:"country"`
	PortForward bool                `json:"port_forward"`
	Offline     bool                `json:"offline"`
	Servers     map[string][]Server `json:"servers"`
}

// Server is one server of a region.
type Server struct {
	IP string `json:"ip"`
	CN string `json:"cn"`
}

// WG returns the region's WireGuard servers.
func (r Region) WG() []Server { return r.Servers["wg"] }

// WGPort is the port of the WireGuard key API (1337 in practice).
func (l *ServerList) WGPort() int {
	if g := l.Groups["wg"]; len(g) > 0 && len(g[0].Ports) > 0 {
		return g[0].Ports[0]
	}
	return 1337
}

// ParseServerList reads the document: a JSON value, then optionally a
// blank line and a base64 RSA-SHA256 signature of the JSON bytes. With a
// key, the signature must be there and valid.
func ParseServerList(body []byte, key *rsa.PublicKey) (*ServerList, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var l ServerList
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("PIA server list: %w", err)
	}
	if len(l.Regions) == 0 {
		return nil, errors.New("PIA server list has no regions")
	}
	signed := body[:dec.InputOffset()]
	sig := strings.TrimSpace(string(body[dec.InputOffset():]))
	if key == nil {
		return &l, nil
	}
	if sig == "" {
		return nil, errors.New("PIA server list is not signed, but a signing key was given: refusing it")
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return nil, fmt.Errorf("PIA server list signature: %w", err)
	}
	sum := sha256.Sum256(signed)
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], raw); err != nil {
		return nil, fmt.Errorf("PIA server list signature does not verify with serverlist_key_file: refusing it (%w)", err)
	}
	return &l, nil
}

// LoadSigningKey reads PIA's server-list key (PEM: PUBLIC KEY or RSA
// PUBLIC KEY).
func LoadSigningKey(path string) (*rsa.PublicKey, error) {
	b, err := secret.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("PIA server-list signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("PIA server-list signing key %s: not PEM", path)
	}
	if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err == nil {
		if rk, ok := k.(*rsa.PublicKey); ok {
			return rk, nil
		}
		return nil, fmt.Errorf("PIA server-list signing key %s: not an RSA key", path)
	}
	k, err := x509.ParsePKCS1PublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PIA server-list signing key %s: %w", path, err)
	}
	return k, nil
}

// ForwardingRegions lists the regions that forward ports and are online.
func (l *ServerList) ForwardingRegions() []Region {
	var out []Region
	for _, r := range l.Regions {
		if r.PortForward && !r.Offline && len(r.WG()) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// Region returns the region with that id, as listed.
func (l *ServerList) Region(id string) (Region, bool) {
	for _, r := range l.Regions {
		if r.ID == id {
			return r, true
		}
	}
	return Region{}, false
}

// Pick returns the region with that id, or that name (as gluetun's
// SERVER_REGIONS names them: "CA Toronto", any case), refusing one that
// does not forward ports.
func (l *ServerList) Pick(id string) (Region, error) {
	for _, r := range l.Regions {
		if r.ID != id && !strings.EqualFold(r.Name, id) {
			continue
		}
		switch {
		case !r.PortForward:
			return r, fmt.Errorf("PIA region %q (%s) does not forward ports; pick one that does: %s", id, r.Name, l.forwardingIDs())
		case r.Offline:
			return r, fmt.Errorf("PIA region %q (%s) is offline", id, r.Name)
		case len(r.WG()) == 0:
			return r, fmt.Errorf("PIA region %q (%s) has no WireGuard servers", id, r.Name)
		}
		return r, nil
	}
	return Region{}, fmt.Errorf("no PIA region %q; regions that forward ports: %s ('vpnfwd providers pia regions' lists them)", id, l.forwardingIDs())
}

func (l *ServerList) forwardingIDs() string {
	var ids []string
	for _, r := range l.ForwardingRegions() {
		ids = append(ids, r.ID)
	}
	if len(ids) > 12 {
		ids = append(ids[:12], "…")
	}
	return strings.Join(ids, ", ")
}

// Latency is a region's measured connect time.
type Latency struct {
	Region Region
	RTT    time.Duration
}

// Measure times a TCP connect to each forwarding region's first WireGuard
// server (its key API port), at most 2 s each, all at once, and returns
// them fastest first; unreachable regions are left out.
func (l *ServerList) Measure(ctx context.Context, d provider.Dialer) []Latency {
	regions := l.ForwardingRegions()
	var (
		mu  sync.Mutex
		out []Latency
		wg  sync.WaitGroup
	)
	sem := make(chan struct{}, 32)
	for _, r := range regions {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			start := time.Now()
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(r.WG()[0].IP, fmt.Sprint(l.WGPort())))
			if err != nil {
				return
			}
			rtt := time.Since(start)
			c.Close()
			mu.Lock()
			out = append(out, Latency{r, rtt})
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].RTT < out[j].RTT })
	return out
}

func validIP(s string) bool { _, err := netip.ParseAddr(s); return err == nil }
