// Package pia is Private Internet Access over WireGuard, end to end: a
// token from the account's username and password, the server list
// (signature checked when the user gives PIA's key), a region (chosen, or
// the lowest-latency one that forwards ports), a fresh WireGuard key
// registered with addKey, then inside the tunnel getSignature and bindPort
// every 15 minutes. The payload is kept in the state directory and reused
// across restarts while it has more than 7 days left, so the port stays
// the same. PIA's CA and signing key are read from files the user gives;
// vpnfwd embeds no copies.
package pia

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/secret"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// Defaults of the PIA API.
const (
	DefaultTokenURL      = "https://www.privateinternetaccess.com/api/client/v2/token"
	DefaultServerListURL = "https://serverlist.piaservers.net/vpninfo/servers/v6"
	DefaultDIPURL        = "https://www.privateinternetaccess.com/api/client/v2/dedicated_ip"
	pfPort               = 19999
)

// Timing and state names.
const (
	RebindEvery  = 15 * time.Minute
	ReuseFor     = 7 * 24 * time.Hour // reuse a payload while it has this much left
	TokenMaxAge  = 20 * time.Hour     // PIA tokens last about 24 h
	stateToken   = "pia-token"
	statePayload = "pia-portforward"
)

// Info describes the provider.
var Info = provider.Info{
	Name:        "pia",
	Summary:     "Private Internet Access over WireGuard: login, region, key, port, all done by vpnfwd",
	Needs:       "username and password (or password_file); ca_file = PIA's ca.rsa.4096.crt; optional region, serverlist_key_file, dip_token (or dip_token_file). No wg-quick file.",
	Port:        "random, chosen by PIA; kept across restarts for about 2 months (state dir)",
	Renewal:     "bindPort every 15 min; a new signature when the payload nears expiry or the port is busy",
	MakesTunnel: true,
	LoginPorts:  func(s provider.Settings) []uint16 { return loginPorts(readConfig(s)) },
	Options: []provider.Option{
		{Key: "username", Flag: "username", Usage: "PIA account `USER` (p1234567)"},
		{Key: "password", Flag: "password", Kind: provider.Secret, Usage: "PIA account `PASSWORD` (prefer --password-file or the environment)"},
		{Key: "password_file", Flag: "password-file", Usage: "`FILE` holding the PIA account password"},
		{Key: "region", Flag: "region", Usage: "PIA region `ID` (default: the lowest-latency one that forwards ports; see 'vpnfwd providers pia regions')"},
		{Key: "ca_file", Flag: "ca-file", Usage: "PIA's CA certificate `FILE` (ca.rsa.4096.crt)"},
		{Key: "serverlist_key_file", Flag: "serverlist-key-file", Usage: "PIA's server-list signing key `FILE` (PEM); checks the list's signature"},
		{Key: "dip_token", Flag: "dip-token", Kind: provider.Secret, Usage: "PIA dedicated IP `TOKEN` (prefer --dip-token-file or the environment)"},
		{Key: "dip_token_file", Flag: "dip-token-file", Usage: "`FILE` holding the PIA dedicated IP token"},
		{Key: "token_url", Flag: "token-url", Kind: provider.URL, Usage: "PIA token API `URL`"},
		{Key: "serverlist_url", Flag: "serverlist-url", Kind: provider.URL, Usage: "PIA server list `URL`"},
		{Key: "dip_url", Kind: provider.URL, Usage: "PIA dedicated IP API URL"},
	},
	New: func(env provider.Env) (provider.Provider, error) { return New(env) },
}

// config is the PIA settings, read once.
type config struct {
	Username, Region, CAFile, ServerListKeyFile string
	TokenURL, ServerListURL, DIPURL             string
	DIPToken                                    secret.String
	settings                                    provider.Settings
}

func readConfig(s provider.Settings) config {
	return config{
		Username: s.String("username"), Region: s.String("region"), CAFile: s.String("ca_file"),
		ServerListKeyFile: s.String("serverlist_key_file"), TokenURL: s.String("token_url"),
		ServerListURL: s.String("serverlist_url"), DIPURL: s.String("dip_url"),
		DIPToken: secret.String(s.String("dip_token")), settings: s,
	}
}

// Secret reads the account password.
func (c config) Secret() (string, error) { return c.settings.Secret("password") }

// loginPorts are the ports of the token, server-list and dedicated-IP
// URLs, and the key API's 1337.
func loginPorts(c config) []uint16 {
	ports := []uint16{1337}
	for _, u := range []string{c.TokenURL, c.ServerListURL, c.DIPURL, DefaultTokenURL, DefaultServerListURL} {
		if u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil {
			continue
		}
		p := pu.Port()
		if p == "" {
			p = map[string]string{"http": "80"}[pu.Scheme]
			if p == "" {
				p = "443"
			}
		}
		if n, err := strconv.Atoi(p); err == nil && !slices.Contains(ports, uint16(n)) {
			ports = append(ports, uint16(n))
		}
	}
	return ports
}

// Provider is the PIA provider; it is a provider.TunnelMaker.
type Provider struct {
	env provider.Env
	cfg config
	ca  *x509.CertPool
	key *rsa.PublicKey
	// wgPort and regionName are set once, by the first registration.
	wgPort     int
	regionName string

	refresh chan struct{} // Refresh: bind again now

	mu      sync.Mutex
	servers []target // the region's servers (one for a dedicated IP)
	at      int      // the one in use
	cn      string   // the WireGuard server's certificate name
	vip     string   // its address inside the tunnel
	tok     string
}

type savedToken struct {
	Token    string    `json:"token"`
	Obtained time.Time `json:"obtained"`
}

// New checks the configuration; nothing is sent yet.
func New(env provider.Env) (*Provider, error) {
	c := readConfig(env.Settings)
	dip, err := env.Settings.Secret("dip_token")
	if err != nil {
		return nil, fmt.Errorf("provider.dip_token_file (--dip-token-file): %w", err)
	}
	c.DIPToken = secret.String(dip)
	if c.TokenURL == "" {
		c.TokenURL = DefaultTokenURL
	}
	if c.ServerListURL == "" {
		c.ServerListURL = DefaultServerListURL
	}
	if c.DIPURL == "" {
		c.DIPURL = DefaultDIPURL
	}
	if c.Username == "" {
		return nil, errors.New("PIA needs your account: --username p1234567 and --password-file FILE (or provider.username / provider.password_file)")
	}
	ca, err := loadCA(c.CAFile)
	if err != nil {
		return nil, err
	}
	p := &Provider{env: env, cfg: c, ca: ca, refresh: make(chan struct{}, 1)}
	if c.ServerListKeyFile != "" {
		if p.key, err = LoadSigningKey(c.ServerListKeyFile); err != nil {
			return nil, err
		}
	}
	if env.Direct == nil {
		p.env.Direct = &net.Dialer{}
	}
	if env.State == nil {
		p.env.State = provider.NoState{}
	}
	if env.Log == nil {
		p.env.Log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// token returns a cached token younger than TokenMaxAge, else logs in
// again (through d: outside the tunnel at start, inside it later).
func (p *Provider) token(ctx context.Context, d provider.Dialer) (string, error) {
	var saved savedToken
	if p.env.State != nil && p.env.State.Load(stateToken, &saved) == nil && time.Since(saved.Obtained) < TokenMaxAge && saved.Token != "" {
		return saved.Token, nil
	}
	pass, err := p.cfg.Secret()
	if err != nil {
		return "", err
	}
	tok, err := fetchToken(ctx, provider.HTTPClient(d, p.env.Roots, ""), p.cfg.TokenURL, p.cfg.Username, pass)
	if err != nil {
		return "", err
	}
	if p.env.State != nil {
		if err := p.env.State.Save(stateToken, savedToken{tok, time.Now()}); err != nil {
			p.env.Log.Warn("saving the PIA token", "err", err)
		}
	}
	return tok, nil
}

// ServerList fetches and checks the server list.
func (p *Provider) ServerList(ctx context.Context) (*ServerList, error) {
	c := provider.HTTPClient(p.env.Direct, p.env.Roots, "")
	req, err := http.NewRequestWithContext(ctx, "GET", p.cfg.ServerListURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("PIA server list from %s: %w", p.cfg.ServerListURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("PIA server list from %s: HTTP %d", p.cfg.ServerListURL, resp.StatusCode)
	}
	if p.key == nil {
		p.env.Log.Warn("PIA server list not verified: give serverlist_key_file (--serverlist-key-file) to check its signature; " + keyHint)
	}
	return ParseServerList(body, p.key)
}

// MakeTunnel implements provider.TunnelMaker: it logs in, picks the
// server, registers a WireGuard key and returns the tunnel to bring up.
func (p *Provider) MakeTunnel(ctx context.Context) (tunnel.WireGuard, error) {
	p.env.Log.Info("PIA: logging in and registering a WireGuard key, outside the tunnel (it does not exist yet)")
	key := p.env.PrivateKey
	if key.IsZero() {
		var err error
		if key, err = tunnel.NewPrivateKey(); err != nil {
			return tunnel.WireGuard{}, err
		}
	}
	return p.register(ctx, key, false)
}

// Rekey implements provider.Rekeyer: when the tunnel stays dead (the
// server forgot our key, or is gone), it registers a fresh key, on the
// region's next server when it has more than one, outside the tunnel.
// Run moves to the new server by itself.
func (p *Provider) Rekey(ctx context.Context) (tunnel.WireGuard, error) {
	key, err := tunnel.NewPrivateKey()
	if err != nil {
		return tunnel.WireGuard{}, err
	}
	return p.register(ctx, key, true)
}

// target is a server to register a key with.
type target struct{ ip, cn string }

// register registers key with the chosen server (the next one of the
// region when next) and returns the tunnel.
func (p *Provider) register(ctx context.Context, key tunnel.PrivateKey, next bool) (tunnel.WireGuard, error) {
	tok, err := p.token(ctx, p.env.Direct)
	if err != nil {
		return tunnel.WireGuard{}, err
	}
	p.mu.Lock()
	servers, at := p.servers, p.at
	p.mu.Unlock()
	if len(servers) == 0 {
		if servers, err = p.choose(ctx, tok); err != nil {
			return tunnel.WireGuard{}, err
		}
	}
	if len(servers) == 0 {
		return tunnel.WireGuard{}, fmt.Errorf("PIA region %s lists no WireGuard server", p.regionName)
	}
	if next {
		at = (at + 1) % len(servers)
	}
	t := servers[at]
	who := fmt.Sprintf("PIA server %s (%s)", t.cn, t.ip)
	c := provider.HTTPClient(p.env.Direct, p.ca, t.cn)
	q := url.Values{"pubkey": {key.Public().String()}}
	var hdr map[string]string
	if dip := string(p.cfg.DIPToken); dip != "" {
		// A dedicated IP's key goes in with HTTP basic auth (user
		// dedicated_ip_TOKEN, password the server's IP) and no pt, as
		// PIA's manual-connections scripts do.
		hdr = map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("dedicated_ip_"+dip+":"+t.ip))}
	} else {
		q.Set("pt", tok)
	}
	u := fmt.Sprintf("https://%s/addKey?%s", net.JoinHostPort(t.ip, strconv.Itoa(p.wgPort)), q.Encode())
	var r addKeyReply
	if _, err := getJSON(ctx, c, "GET", u, nil, hdr, &r); err != nil {
		return tunnel.WireGuard{}, explainTLS(err, who+" addKey", t.cn, p.cfg.CAFile)
	}
	if r.Status != "OK" {
		if strings.Contains(strings.ToLower(r.Message), "token") {
			p.env.State.Delete(stateToken)
		}
		return tunnel.WireGuard{}, fmt.Errorf("%s addKey: status %q: %s", who, r.Status, r.Message)
	}
	w, err := tunnelFrom(r, key)
	if err != nil {
		return tunnel.WireGuard{}, fmt.Errorf("%s addKey: %w", who, err)
	}
	p.mu.Lock()
	p.servers, p.at = servers, at
	p.cn, p.vip, p.tok = t.cn, r.ServerVIP, tok
	p.mu.Unlock()
	p.env.Log.Info("PIA: key registered", "region", p.regionName, "server", t.cn, "endpoint", string(w.Peers[0].Endpoint), "address", r.PeerIP)
	return w, nil
}

// choose picks the dedicated IP's server, or the region's servers (the
// configured region, else the lowest-latency one that forwards ports).
func (p *Provider) choose(ctx context.Context, tok string) ([]target, error) {
	p.wgPort = 1337
	if dip := string(p.cfg.DIPToken); dip != "" {
		d, err := fetchDIP(ctx, provider.HTTPClient(p.env.Direct, p.env.Roots, ""), p.cfg.DIPURL, tok, dip)
		if err != nil {
			return nil, err
		}
		// Port forwarding works for a dedicated IP only where the region
		// forwards ports at all.
		list, err := p.ServerList(ctx)
		if err != nil {
			return nil, err
		}
		if r, ok := list.Region(d.ID); ok && !r.PortForward {
			return nil, fmt.Errorf("PIA dedicated IP %s is in region %s (%s), where PIA forwards no ports: vpnfwd cannot get a port for it; use a dedicated IP in a region that forwards ports ('vpnfwd providers pia regions' lists them)", d.IP, d.ID, r.Name)
		}
		p.regionName = "dedicated IP (" + d.ID + ")"
		return []target{{d.IP, d.CN}}, nil
	}
	list, err := p.ServerList(ctx)
	if err != nil {
		return nil, err
	}
	p.wgPort = list.WGPort()
	var r Region
	if p.cfg.Region != "" {
		if r, err = list.Pick(p.cfg.Region); err != nil {
			return nil, err
		}
	} else {
		lat := list.Measure(ctx, p.env.Direct)
		if len(lat) == 0 {
			return nil, errors.New("no PIA region that forwards ports answered (is the network up?)")
		}
		r = lat[0].Region
		p.env.Log.Info("PIA: lowest-latency region that forwards ports", "region", r.ID, "rtt", lat[0].RTT.Round(time.Millisecond).String(), "measured", len(lat))
	}
	p.regionName = r.ID + " (" + r.Name + ")"
	var out []target
	for _, s := range r.WG() {
		out = append(out, target{s.IP, s.CN})
	}
	return out, nil
}

// tunnelFrom builds the WireGuard configuration from addKey's answer.
func tunnelFrom(r addKeyReply, key tunnel.PrivateKey) (tunnel.WireGuard, error) {
	pub, err := tunnel.ParseKey(r.ServerKey)
	if err != nil {
		return tunnel.WireGuard{}, fmt.Errorf("server_key: %w", err)
	}
	peerIP, err := tunnel.ParsePrefix(r.PeerIP)
	if err != nil {
		return tunnel.WireGuard{}, fmt.Errorf("peer_ip: %w", err)
	}
	if netip.Prefix(peerIP).Addr().Is4() {
		peerIP = tunnel.Prefix(netip.PrefixFrom(netip.Prefix(peerIP).Addr(), 32))
	}
	ep, err := tunnel.ParseEndpoint(net.JoinHostPort(r.ServerIP, strconv.Itoa(r.ServerPort)))
	if err != nil {
		return tunnel.WireGuard{}, err
	}
	if _, err := netip.ParseAddr(r.ServerVIP); err != nil {
		return tunnel.WireGuard{}, fmt.Errorf("server_vip %q", r.ServerVIP)
	}
	w := tunnel.WireGuard{PrivateKey: key, Address: []tunnel.Prefix{peerIP}}
	for _, d := range r.DNSServers {
		var a tunnel.Addr
		if a.UnmarshalText([]byte(d)) == nil {
			w.DNS = append(w.DNS, a)
		}
	}
	all, _ := tunnel.ParsePrefix("0.0.0.0/0")
	w.Peers = []tunnel.Peer{{PublicKey: pub, Endpoint: ep, AllowedIPs: []tunnel.Prefix{all}, PersistentKeepalive: 25}}
	return w, nil
}

// Refresh implements provider.Refresher: the next bindPort goes now (the
// tunnel came back, maybe with a new key and address, and PIA forwards
// the port to whoever bound it last).
func (p *Provider) Refresh() {
	select {
	case p.refresh <- struct{}{}:
	default:
	}
}

// SetTunnel implements provider.TunnelMaker.
func (p *Provider) SetTunnel(addrs []netip.Prefix, dns []netip.Addr) {
	p.env.Tunnel, p.env.DNS = addrs, dns
}

// SetDialer sets the dialer through the tunnel (the daemon creates the
// tunnel after MakeTunnel).
func (p *Provider) SetDialer(d provider.Dialer) { p.env.Dialer = d }

// ControlEndpoints implements provider.Guarded: the current server's port
// API (getSignature, bindSignature), which answers anyone in the tunnel.
func (p *Provider) ControlEndpoints() []provider.Endpoint {
	p.mu.Lock()
	vip := p.vip
	p.mu.Unlock()
	a, err := netip.ParseAddr(vip)
	if err != nil {
		return nil
	}
	return []provider.Endpoint{{Network: "tcp", Addr: netip.AddrPortFrom(a, pfPort)}}
}
