package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/status"
)

// The tunnel's public address where the provider does not say it (PIA,
// the static providers): --public-ip-url asked through the tunnel, as
// gluetun asks ipinfo.io, after each new port and each recovery.

// askPublicIP queues a lookup (the session's apply stage calls it; it never
// blocks).
func (d *Daemon) askPublicIP() {
	if d.ipLookup == nil {
		return
	}
	select {
	case d.ipLookup <- struct{}{}:
	default:
	}
}

// publicIPLoop runs the queued lookups until ctx ends.
func (d *Daemon) publicIPLoop(ctx context.Context) {
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: tunnelDialer{d}.DialContext,
		MaxIdleConns: 1, IdleConnTimeout: time.Second}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.ipLookup:
		}
		info, err := lookupPublicIP(ctx, c, d.cfg.PublicIPURL)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("asking the public address through the tunnel", "url", redactQuery(d.cfg.PublicIPURL), "err", err)
			}
			continue
		}
		if old := d.publicIP.Load(); old == nil || old.IP != info.IP {
			d.log.Info("public address through the tunnel", "ip", info.IP, "country", info.Country, "city", info.City)
		}
		d.publicIP.Store(&info)
	}
}

// lookupPublicIP asks url: a plain-text address, or ipinfo.io's JSON
// ({"ip","hostname","city","region","country","loc","org","postal","timezone"}).
func lookupPublicIP(ctx context.Context, c *http.Client, url string) (status.PublicIP, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return status.PublicIP{}, err
	}
	req.Header.Set("Accept", "application/json, text/plain")
	resp, err := c.Do(req)
	if err != nil {
		return status.PublicIP{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return status.PublicIP{}, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if err != nil {
		return status.PublicIP{}, err
	}
	text := strings.TrimSpace(string(b))
	if a, err := netip.ParseAddr(text); err == nil {
		return status.PublicIP{IP: a.String()}, nil
	}
	var j struct {
		IP, Hostname, City, Region, Country, Loc, Org, Postal, Timezone string
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return status.PublicIP{}, fmt.Errorf("neither an address nor ipinfo.io's JSON: %.60q", text)
	}
	a, err := netip.ParseAddr(j.IP)
	if err != nil {
		return status.PublicIP{}, fmt.Errorf("no address in the answer: %.60q", text)
	}
	return status.PublicIP{IP: a.String(), Hostname: j.Hostname, City: j.City, Region: j.Region, Country: j.Country,
		Location: j.Loc, Organization: j.Org, PostalCode: j.Postal, Timezone: j.Timezone}, nil
}

// redactQuery drops a URL's query (ipinfo.io's token rides there).
func redactQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?[redacted]"
	}
	return u
}
