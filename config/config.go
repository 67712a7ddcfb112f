// Package config is vpnfwd's configuration model: the TOML file, VPNFWD_*
// environment variables and command-line flags (flag > env > file >
// default), wg-quick import, defaults and validation. Errors name the file
// and line where one is known. Secrets are typed so they print redacted.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/vpnfwd/vpnfwd/api"
	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/portcheck"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/publish"
	"github.com/vpnfwd/vpnfwd/secret"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// Config is the whole configuration.
type Config struct {
	StateDir   string           `toml:"state_dir"`
	LogLevel   string           `toml:"log_level"`
	WireGuard  tunnel.WireGuard `toml:"wireguard"`
	Provider   Provider         `toml:"provider"`
	Forward    Forward          `toml:"forward"`
	Proxy      Proxy            `toml:"proxy"`
	API        API              `toml:"api"`
	DNS        DNS              `toml:"dns"`
	KillSwitch KillSwitch       `toml:"killswitch"`
	PortCheck  PortCheck        `toml:"port_check"`
	// PublicIPURL, when set, is asked through the tunnel for the address
	// the internet sees (plain text, or ipinfo.io's JSON) where the
	// provider does not say it; gluetun's environment sets ipinfo.io.
	PublicIPURL string    `toml:"public_ip_url"`
	Publish     []Publish `toml:"publish"`

	// ServerList picks the servers from a server list (gluetun's) instead
	// of wg-quick files: the [wireguard] section then has the key and the
	// addresses, and each matching server is one peer to move to.
	ServerList ServerList `toml:"servers"`

	// Servers are the tunnels of every wg-quick file --wg-config names,
	// or of every server the server list selects, in order (LoadTunnel
	// fills it; WireGuard is the first): vpnfwd moves to the next when one
	// stays dead (FailoverAfter).
	Servers []tunnel.WireGuard `toml:"-"`
	// FailoverAfter is how long the tunnel may stay down, or the port
	// dead or unobtainable, before vpnfwd moves to the next server (with
	// several wg-quick files, or PIA's next server in the region).
	FailoverAfter Duration `toml:"failover_after"`

	// Providers are the providers this program knows (RegisterFlags
	// sets them; a Config made by hand sets them itself).
	Providers provider.List `toml:"-"`

	// Warnings collected while loading (ignored wg-quick keys, unknown
	// TOML keys). The caller logs them.
	Warnings []string `toml:"-"`
	// Notes are said once at start (what a gluetun environment became).
	Notes []string `toml:"-"`
	// File is the TOML file the config came from, if any.
	File string `toml:"-"`
}

// Provider names the port-forwarding provider; every other key of the
// [provider] table belongs to that provider, which declares it (see
// provider.Info.Options): Settings holds them as given (TOML values, or the
// strings of flags and environment variables) until the provider reads
// them. Validate checks them against the provider's declaration.
type Provider struct {
	Name     string
	Settings provider.Settings
}

// UnmarshalTOML takes the [provider] table: name, and the rest as settings.
func (p *Provider) UnmarshalTOML(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return errors.New("[provider] must be a table")
	}
	p.Settings = provider.Settings{}
	for k, val := range m {
		if k == "name" {
			s, ok := val.(string)
			if !ok {
				return errors.New("provider.name must be a string")
			}
			p.Name = s
			continue
		}
		p.Settings[k] = val
	}
	return nil
}

// Set records a setting given as a flag or environment variable (a
// string, or a secret.String).
func (p *Provider) Set(key string, value any) {
	if p.Settings == nil {
		p.Settings = provider.Settings{}
	}
	p.Settings[key] = value
}

// Forward says where forwarded traffic goes.
type Forward struct {
	// Target is HOST or HOST:PORT; without a port, the forwarded port.
	Target    string   `toml:"target"`
	Protocols []string `toml:"protocols"`
	// UDPIdle closes a UDP flow after this long without packets.
	UDPIdle Duration `toml:"udp_idle_timeout"`
	// MaxUDPFlows bounds the UDP peer table, MaxUDPFlowsPerSource the
	// flows of one remote address.
	MaxUDPFlows          int `toml:"max_udp_flows"`
	MaxUDPFlowsPerSource int `toml:"max_udp_flows_per_source"`
	// MaxConnections bounds the bridged TCP connections, overall and per
	// remote address; over a bound the idlest connection is closed.
	MaxConnections          int `toml:"max_connections"`
	MaxConnectionsPerSource int `toml:"max_connections_per_source"`
	// IdleTimeout closes a TCP connection with no traffic for this long.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxPendingHandshakes bounds incoming TCP handshakes in progress
	// (SYN received, not yet completed), overall and per remote address.
	MaxPendingHandshakes int `toml:"max_pending_handshakes"`
	MaxPendingPerSource  int `toml:"max_pending_per_source"`
	// PerPeerSource gives each remote peer its own loopback source
	// address toward the service, so per-IP connection limits still work.
	PerPeerSource bool `toml:"per_peer_source"`
	// Local are the local forwards, [BIND:]PORT=HOST:PORT[/udp]: a
	// listener on this host whose connections go to HOST:PORT through
	// the tunnel. LocalAllow are the CIDRs that may use one listening
	// off loopback (loopback always may).
	Local      []string `toml:"local"`
	LocalAllow []string `toml:"local_allow"`
	// NATPMP answers the NAT-PMP and PCP requests of the apps in the
	// namespace (tun mode, exec) with a port vpnfwd holds.
	NATPMP bool `toml:"nat_pmp"`
	// UPnP answers the apps' UPnP IGD discovery and control (tun mode,
	// exec) with the same held ports, in the same table.
	UPnP bool `toml:"upnp"`
}

// Proxy configures the outbound proxies; "" turns one off. With a
// username (and password), both require them; a proxy off loopback must.
type Proxy struct {
	SOCKS5       string        `toml:"socks5"`
	HTTP         string        `toml:"http"`
	Username     string        `toml:"username"`
	Password     secret.String `toml:"password"`
	PasswordFile string        `toml:"password_file"`
}

// Secret reads the proxies' password, from PasswordFile when set.
func (p Proxy) Secret() (string, error) {
	return secret.Read(p.Password, p.PasswordFile)
}

// HasCredentials reports whether the proxies require a login.
func (p Proxy) HasCredentials() bool {
	return p.Username != "" || p.Password != "" || p.PasswordFile != ""
}

// PortCheck configures the outside check of the forwarded port: a port
// checker on the internet, asked through the tunnel (see package
// portcheck).
type PortCheck struct {
	// URL is the checker's URL template with {port} (and {ip} if it
	// needs the public address); "" or "off": no outside check.
	URL string `toml:"url"`
	// Every is how often it is asked while the port is fine (default
	// 5 min; at least 1 min: these are other people's servers).
	Every Duration `toml:"every"`
}

// API configures the control API.
type API struct {
	Listen    string `toml:"listen"`
	TokenFile string `toml:"token_file"`
	// AuthConfig is gluetun's control-server auth file (roles with
	// routes and none/apikey/basic auth), accepted as it is.
	AuthConfig string `toml:"auth_config"`
	// AuthDefaultRole is gluetun's HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE:
	// JSON for the role of every route no role names.
	AuthDefaultRole string `toml:"auth_default_role"`
	// AuthDefaultRoleFile holds AuthDefaultRole's JSON instead (it holds
	// a key or password); read when the roles are.
	AuthDefaultRoleFile string `toml:"auth_default_role_file"`
	// GluetunAuth: gluetun's environment gave the auth settings, read as
	// gluetun reads them (api.ReadGluetunAuth): {} is no default role,
	// and every route no role names answers 401, all of them with no role.
	GluetunAuth bool `toml:"-"`
	// AllowedHosts are Host names the API answers besides loopback and
	// its listen address (DNS-rebinding protection); "*" allows any.
	AllowedHosts []string `toml:"allowed_hosts"`
}

// DNS configures the DNS forwarder.
type DNS struct {
	// Listen is where the forwarder answers (UDP and TCP), e.g.
	// 127.0.0.1:53. Unset, it is 127.0.0.1:53 in tun mode and off
	// otherwise; "off" turns it off.
	Listen string `toml:"listen"`
	// ResolvConf points /etc/resolv.conf at the forwarder while vpnfwd
	// runs (a container's own file), and puts the old one back at exit.
	ResolvConf bool `toml:"resolv_conf"`
	// Allow are the networks that may ask a forwarder listening off
	// loopback (required there: an open resolver is an amplifier).
	Allow []string `toml:"allow"`
}

// KillSwitch configures the nftables kill switch.
type KillSwitch struct {
	Enabled bool `toml:"enabled"`
	// Table is the nftables table (family inet); two vpnfwd in one
	// namespace each need their own. Default "vpnfwd".
	Table    string   `toml:"table"`
	AllowLAN []string `toml:"allow_lan"`
	// AllowLocalSubnets lets through the subnets of this namespace's own
	// interfaces (a container's network: its published ports), as
	// gluetun's firewall does.
	AllowLocalSubnets bool `toml:"allow_local_subnets"`
	// Lockdown keeps the rules after vpnfwd exits.
	Lockdown bool `toml:"lockdown"`
	// OnlyUID / OnlyCgroup confine only that user's or cgroup's traffic
	// instead of the whole network namespace.
	OnlyUID    *int   `toml:"only_uid"`
	OnlyCgroup string `toml:"only_cgroup"`
}

// Publish is one consumer of the forwarded port.
type Publish struct {
	Type string `toml:"type"` // file | exec | qbittorrent | transmission | deluge
	// Owner ("UID:GID") is given the port file after each write (file).
	Owner   string   `toml:"owner"`
	Path    string   `toml:"path"`
	Command string   `toml:"command"`
	On      string   `toml:"on"` // exec: "port" (default) or "lost"
	Shell   bool     `toml:"shell"`
	Timeout Duration `toml:"timeout"`

	// Torrent clients.
	URL           string        `toml:"url"`
	Username      string        `toml:"username"`
	Password      secret.String `toml:"password"`
	PasswordFile  string        `toml:"password_file"`
	APIKey        secret.String `toml:"api_key"` // qBittorrent 5.2+
	APIKeyFile    string        `toml:"api_key_file"`
	CheckInterval Duration      `toml:"check_interval"` // default 60 s
	// qBittorrent extras for a bridged setup (opt-in).
	MultiConnections bool `toml:"multi_connections"`
	UseProxy         bool `toml:"use_proxy"` // point its proxy at vpnfwd's SOCKS5
	// BindInterface binds qBittorrent to the tunnel's interface (tun
	// mode, exec).
	BindInterface bool `toml:"bind_interface"`
}

// Duration is a time.Duration written as "30s" or a number of seconds.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	*d = Duration(v)
	return err
}

func parseDuration(s string) (time.Duration, error) {
	if v, err := time.ParseDuration(s); err == nil {
		return v, nil
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err == nil && fmt.Sprint(n) == s {
		return time.Duration(n) * time.Second, nil
	}
	return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 5m)", s)
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Defaults returns the configuration used where nothing else is said.
func Defaults() Config {
	return Config{
		LogLevel: "info",
		Forward: Forward{
			Target:                  "127.0.0.1",
			Protocols:               []string{"tcp", "udp"},
			UDPIdle:                 Duration(2 * time.Minute),
			MaxUDPFlows:             2048,
			MaxUDPFlowsPerSource:    64,
			MaxConnections:          2048,
			MaxConnectionsPerSource: 128,
			IdleTimeout:             Duration(15 * time.Minute),
			MaxPendingHandshakes:    1024,
			MaxPendingPerSource:     64,
			NATPMP:                  true,
			UPnP:                    true,
		},
		Proxy: Proxy{SOCKS5: "127.0.0.1:1080", HTTP: "127.0.0.1:8118"},
		API:   API{Listen: "127.0.0.1:9070"},
	}
}

// LoadFile decodes a TOML file over cfg. Unknown keys are warnings.
func LoadFile(cfg *Config, path string) error {
	b, err := secret.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	md, err := toml.Decode(string(b), cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &LineError{File: path, Line: pe.Position.Line, Err: errors.New(pe.Message)}
		}
		return &LineError{File: path, Err: err}
	}
	for _, k := range md.Undecoded() {
		if len(k) > 0 && k[0] == "provider" {
			continue // the provider's own keys: Validate checks them against its options
		}
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s: unknown key %q (ignored)", path, k.String()))
	}
	cfg.File = path
	return nil
}

// validateTun checks the TUN's name and sets tun mode's defaults: the DNS
// forwarder on 127.0.0.1:53 unless turned off.
func (c *Config) validateTun(add func(string, ...any)) {
	name := c.WireGuard.Tun
	switch {
	case name == "":
	case len(name) > 15 || strings.ContainsAny(name, "/ \t\n:") || name == "." || name == "..":
		add("wireguard.tun: %q is not an interface name (at most 15 characters, no '/', ':' or spaces)", name)
	case c.DNS.Listen == "":
		c.DNS.Listen = "127.0.0.1:53"
	}
	if c.DNS.Listen == "off" {
		c.DNS.Listen = ""
	}
}

// LoadTunnel fills WireGuard from the wg-quick file it names, if any, and
// validates it. A relative path is taken from the TOML file's directory.
func (c *Config) LoadTunnel() error {
	w := &c.WireGuard
	if c.ServerList.List != "" {
		switch {
		case w.Config != "":
			return fmt.Errorf("both a wg-quick file (%s) and a server list (%s) name the server: give one", w.Config, c.ServerList.List)
		case len(w.Peers) > 0:
			return fmt.Errorf("both a [[wireguard.peer]] and a server list (%s) name the server: give one", c.ServerList.List)
		}
		if err := c.loadServerList(); err != nil {
			return err
		}
		if err := errors.Join(c.WireGuard.Validate(), checkTunnelValues(&c.WireGuard)); err != nil {
			return fmt.Errorf("%s: %w", c.ServerList.List, err)
		}
		return nil
	}
	if w.Config == "" {
		if !w.HasInline() {
			return errors.New("no WireGuard configuration: give --wg-config FILE (the wg-quick file from your provider) or a [wireguard] section")
		}
		if err := errors.Join(w.Validate(), checkTunnelValues(w)); err != nil {
			return fmt.Errorf("%s: [wireguard]: %w", c.nameOr("config"), err)
		}
		return nil
	}
	if w.HasInline() {
		return fmt.Errorf("%s: [wireguard] has both config = %q and inline keys; use one", c.nameOr("config"), w.Config)
	}
	paths, err := c.serverFiles(w.Config)
	if err != nil {
		return err
	}
	c.Servers = nil
	for _, path := range paths {
		loaded, warns, err := LoadWGQuick(path)
		c.Warnings = append(c.Warnings, warns...)
		if w := secret.Loose(path); w != "" {
			c.Warnings = append(c.Warnings, w)
		}
		if err != nil {
			return err
		}
		loaded.Config, loaded.Name, loaded.Tun = path, w.Name, w.Tun
		if w.MTU != 0 {
			loaded.MTU = w.MTU
		}
		c.Servers = append(c.Servers, loaded)
	}
	*w = c.Servers[0]
	return nil
}

// serverFiles expands wireguard.config: a comma-separated list of wg-quick
// files and directories (each directory's *.conf files, in name order).
// A relative path is taken from the TOML file's directory.
func (c *Config) serverFiles(list string) ([]string, error) {
	var out []string
	for _, path := range strings.Split(list, ",") {
		path = strings.TrimSpace(path)
		if path == "" {
			continue
		}
		if c.File != "" && !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(c.File), path)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("reading WireGuard config: %w", err)
		}
		if !fi.IsDir() {
			out = append(out, path)
			continue
		}
		confs, err := filepath.Glob(filepath.Join(path, "*.conf"))
		if err != nil {
			return nil, err
		}
		if len(confs) == 0 {
			return nil, fmt.Errorf("WireGuard config directory %s holds no *.conf file", path)
		}
		sort.Strings(confs)
		out = append(out, confs...)
	}
	if len(out) == 0 {
		return nil, errors.New("no WireGuard configuration: --wg-config names no file")
	}
	return out, nil
}

func (c *Config) nameOr(s string) string {
	if c.File != "" {
		return c.File
	}
	return s
}

// validIfName applies the kernel's and WireGuard's rule for interface
// names (wg-quick's: [a-zA-Z0-9_=+.-]{1,15}); the name becomes a file
// name (NAME.sock), so nothing else may pass.
func validIfName(n string) bool {
	if len(n) == 0 || len(n) > 15 || n == "." || n == ".." || n[0] == '-' {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_=+.-", r)) {
			return false
		}
	}
	return true
}

// secretFiles are the files that hold secrets: the API token and auth
// file, passwords and API keys (LoadTunnel checks the wg-quick files).
func (c *Config) secretFiles() []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	add(c.API.TokenFile)
	add(c.API.AuthConfig)
	add(c.API.AuthDefaultRoleFile)
	add(c.Proxy.PasswordFile)
	for _, p := range c.Publish {
		add(p.PasswordFile)
		add(p.APIKeyFile)
	}
	if info, ok := c.Providers.Lookup(c.Provider.Name); ok {
		for _, o := range info.Options {
			if o.Kind == provider.Secret {
				add(c.Provider.Settings.String(o.Key + "_file"))
			}
		}
	}
	return out
}

// Validate checks everything but the tunnel (see LoadTunnel).
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := ParseHostPort(c.Forward.Target); err != nil {
		add("forward.target: %v", err)
	}
	if len(c.Forward.Protocols) == 0 {
		add("forward.protocols: empty (want tcp, udp or both)")
	}
	for _, p := range c.Forward.Protocols {
		if p != "tcp" && p != "udp" {
			add("forward.protocols: %q (want tcp or udp)", p)
		}
	}
	c.validateLimits(add)
	c.validateLocal(add)
	for _, a := range c.DNS.Allow {
		if _, err := netip.ParsePrefix(a); err != nil {
			add("dns.allow (--dns-allow): %q is not a CIDR (e.g. 172.17.0.0/16)", a)
		}
	}
	if u := c.PublicIPURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			add("public_ip_url (--public-ip-url): %q is not an http:// or https:// URL (e.g. https://ipinfo.io/json)", u)
		}
	}
	if d := c.StateDir; d != "" {
		if why := checkStateDir(d); why != "" {
			add("state_dir (--state-dir): %s", why)
		}
	}
	if n := c.WireGuard.Name; n != "" && n != "-" && !validIfName(n) {
		add("wireguard.name (--wg-name): %q is not a WireGuard device name (1 to 15 of letters, digits and _=+.-, not starting with '-', not \".\" or \"..\"); it names the control socket file", n)
	}
	// Checked whether the kill switch is on or not: a bad name in the
	// file waits for the day it is turned on.
	if t := c.KillSwitch.Table; t != "" && !validTableName(t) {
		add("killswitch.table (--killswitch-table): %.70q is not an nftables table name (a letter or _ first, then letters, digits and _-., at most 64 characters), e.g. vpnfwd2", t)
	}
	for _, p := range c.secretFiles() {
		if w := secret.Loose(p); w != "" {
			c.Warnings = append(c.Warnings, w)
		}
	}
	if u := c.PortCheck.URL; u == "off" {
		c.PortCheck.URL = ""
	} else if u != "" {
		if err := portcheck.ParseTemplate(u); err != nil {
			add("port_check.url (--port-check): %v, or \"off\"", err)
		}
	}
	if f := time.Duration(c.FailoverAfter); f < 0 || (f != 0 && f < time.Second) {
		add("failover_after (--failover-after): %s is too short (at least 1s)", f)
	}
	if e := time.Duration(c.PortCheck.Every); e != 0 && e < time.Minute {
		add("port_check.every (--port-check-every): %s is too often for someone else's server (at least 1m)", e)
	}
	for _, a := range []struct{ name, v string }{{"proxy.socks5", c.Proxy.SOCKS5}, {"proxy.http", c.Proxy.HTTP}} {
		if a.v == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(a.v)
		if err != nil {
			add("%s: %q is not IP:PORT", a.name, a.v)
		} else if !ap.Addr().IsLoopback() && !c.Proxy.HasCredentials() {
			add("%s = %s is reachable from other hosts: set proxy.username and proxy.password_file (--proxy-username, --proxy-password-file) so it needs a login, or keep it on 127.0.0.1", a.name, a.v)
		}
	}
	for _, l := range c.KillSwitch.AllowLAN {
		p, err := tunnel.ParsePrefix(l)
		if err != nil {
			add("killswitch.allow_lan (--allow-lan): %v", err)
		} else if netip.Prefix(p).Bits() == 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("killswitch.allow_lan = %s lets everything out around the tunnel: the kill switch then protects nothing; name your LAN (e.g. 192.168.1.0/24)", l))
		}
	}
	if u := c.KillSwitch.OnlyUID; u != nil && (*u < 0 || int64(*u) > 1<<31) {
		add("killswitch.only_uid (--only-uid): %d is not a user id", *u)
	}
	if c.KillSwitch.OnlyUID != nil && c.KillSwitch.OnlyCgroup != "" {
		add("killswitch: only_uid and only_cgroup together: pick one")
	}
	if err := c.validateAPI(); err != nil {
		errs = append(errs, err)
	}
	c.validateTun(add)
	if l := c.DNS.Listen; l != "" {
		ap, err := netip.ParseAddrPort(l)
		switch {
		case err != nil:
			add("dns.listen (--dns-listen): %q is not IP:PORT, or \"off\"", l)
		case !ap.Addr().IsLoopback() && len(c.DNS.Allow) == 0:
			add("dns.listen = %s is reachable from other hosts: name who may ask with dns.allow (--dns-allow CIDR[,CIDR]), or keep it on 127.0.0.1 (an open resolver is an amplifier for strangers)", l)
		}

		if c.DNS.ResolvConf && err == nil && ap.Port() != 53 {
			add("dns.resolv_conf needs the forwarder on port 53 (resolv.conf names no port), not %s", l)
		}
	} else if c.DNS.ResolvConf {
		add("dns.resolv_conf needs dns.listen (--dns-listen 127.0.0.1:53)")
	}
	if info, ok := c.Providers.Lookup(c.Provider.Name); ok {
		warns, err := info.Check(c.Provider.Settings)
		c.Warnings = append(c.Warnings, warns...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.validatePublish()...)
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", c.nameOr("configuration"), errors.Join(errs...))
	}
	return nil
}

// validateLocal checks the local forwards: each well formed, one per
// listening socket, and off loopback only with local_allow.
func (c *Config) validateLocal(add func(string, ...any)) {
	seen := map[string]bool{}
	for _, v := range c.Forward.Local {
		s, err := forward.ParseLocalForward(v)
		if err != nil {
			add("forward.local (--local-forward): %v", err)
			continue
		}
		k := s.Proto() + " " + s.Bind.String()
		if seen[k] {
			add("forward.local (--local-forward): %s %s is given twice", s.Proto(), s.Bind)
		}
		seen[k] = true
		if _, err := netip.ParseAddr(s.Host); err != nil && !isDomain(s.Host) {
			add("forward.local (--local-forward) %q: destination %q is neither an IP address nor a host name (letters, digits, '-' and dots)", v, s.Host)
		}
		if !s.Bind.Addr().IsLoopback() && len(c.Forward.LocalAllow) == 0 {
			add("forward.local = %s listens off loopback: name who may use it with forward.local_allow (--local-forward-allow CIDR[,CIDR]), or keep it on 127.0.0.1 (anyone reaching it would use your tunnel)", v)
		}
	}
	for _, a := range c.Forward.LocalAllow {
		if _, err := netip.ParsePrefix(a); err != nil {
			add("forward.local_allow (--local-forward-allow): %q is not a CIDR (e.g. 172.17.0.0/16)", a)
		}
	}
}

// validateLimits checks the bounds on what remote peers may hold: each
// must be at least 1 (a zero or negative bound would refuse everyone, or
// mean nothing).
func (c *Config) validateLimits(add func(string, ...any)) {
	f := c.Forward
	for _, l := range []struct {
		key string
		v   int
	}{
		{"forward.max_udp_flows", f.MaxUDPFlows}, {"forward.max_udp_flows_per_source", f.MaxUDPFlowsPerSource},
		{"forward.max_connections", f.MaxConnections}, {"forward.max_connections_per_source", f.MaxConnectionsPerSource},
		{"forward.max_pending_handshakes", f.MaxPendingHandshakes}, {"forward.max_pending_per_source", f.MaxPendingPerSource},
	} {
		if l.v < 1 || l.v > 1<<20 {
			add("%s: %d: want a number from 1 to %d", l.key, l.v, 1<<20)
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"forward.udp_idle_timeout", f.UDPIdle}, {"forward.idle_timeout", f.IdleTimeout}} {
		if d.v < Duration(time.Second) {
			add("%s: %s: want at least 1s", d.key, time.Duration(d.v))
		}
	}
	if w := c.WireGuard.MTU; w != 0 && (w < 576 || w > 65535) {
		add("wireguard.mtu: %d: want a number from 576 to 65535", w)
	}
}

// validatePublish checks the [[publish]] entries.
func (c *Config) validatePublish() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for i, p := range c.Publish {
		switch p.Type {
		case "file":
			if p.Path == "" {
				add("publish %d (file): no path", i+1)
			} else if err := publish.CheckFile(p.Path); err != nil {
				add("publish %d (file, --port-file): %v", i+1, err)
			}
			if _, err := p.FileOwner(); err != nil {
				add("publish %d (file): %v", i+1, err)
			}
		case "exec":
			if strings.TrimSpace(p.Command) == "" {
				add("publish %d (exec): no command", i+1)
			}
			if p.On != "" && p.On != "port" && p.On != "lost" {
				add("publish %d (exec): on = %q (want \"port\" or \"lost\")", i+1, p.On)
			}
		case "qbittorrent", "transmission", "deluge":
			if p.URL == "" {
				add("publish %d (%s): no url (e.g. http://127.0.0.1:8080)", i+1, p.Type)
			} else if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add("publish %d (%s): url %q: want http://HOST:PORT", i+1, p.Type, p.URL)
			}
			if p.UseProxy && c.Proxy.SOCKS5 == "" {
				add("publish %d (%s): use_proxy needs vpnfwd's SOCKS5 proxy, which is off", i+1, p.Type)
			}
			if p.UseProxy && !c.KillSwitch.Enabled {
				add("publish %d (%s): use_proxy sends trackers and name lookups through the tunnel but not peer connections (proxied, libtorrent stops accepting peers), "+
					"so they would leave from your real address: turn on the kill switch (--killswitch), which blocks them instead", i+1, p.Type)
			}
			if p.UseProxy && c.Proxy.HasCredentials() {
				add("publish %d (%s): use_proxy with proxy credentials is not supported", i+1, p.Type)
			}
			if p.BindInterface && p.Type != "qbittorrent" {
				add("publish %d (%s): bind_interface is qBittorrent's (its network interface setting)", i+1, p.Type)
			}

		case "rtorrent":
			add("publish %d: rTorrent only applies network.port_range when it opens its listening socket (at start), so vpnfwd cannot change its port while it runs; "+
				"use --on-port to restart rTorrent with the new port, or a static port", i+1)
		case "":
			add("publish %d: no type (file, exec, qbittorrent, transmission or deluge)", i+1)
		default:
			add("publish %d: unknown type %q (file, exec, qbittorrent, transmission or deluge)", i+1, p.Type)
		}
	}
	return errs
}

// Roles reads the control API's roles from the auth settings: vpnfwd's
// reading (api.ReadAuthFile: a setting that names no role is an error),
// or gluetun's for its environment (api.ReadGluetunAuth).
func (a API) Roles() ([]api.Role, error) {
	def, err := a.defaultRole()
	if err != nil {
		return nil, err
	}
	if a.GluetunAuth {
		return api.ReadGluetunAuth(a.AuthConfig, def)
	}
	return api.ReadAuthFile(a.AuthConfig, def)
}

// defaultRole is AuthDefaultRole, or what AuthDefaultRoleFile holds.
func (a API) defaultRole() (string, error) {
	if a.AuthDefaultRoleFile == "" {
		return a.AuthDefaultRole, nil
	}
	def, err := secret.Read("", a.AuthDefaultRoleFile)
	if err != nil {
		return "", fmt.Errorf("api.auth_default_role_file (--api-auth-default-role-file): %w", err)
	}
	return def, nil
}

// validateAPI checks the API's address and auth settings: off loopback
// something must authenticate requests (the token, a role), or the user
// must have opened it in words that cannot be mistaken (a role with auth
// "none").
func (c *Config) validateAPI() error {
	l := c.API.Listen
	roles, err := c.API.Roles()
	if err != nil {
		return err
	}
	if l == "" {
		return nil
	}
	if path, ok := strings.CutPrefix(l, "unix:"); ok {
		return api.CheckSocketPath(path)
	}
	ap, err := netip.ParseAddrPort(l)
	if err != nil {
		return fmt.Errorf("api.listen (--api): %q is not IP:PORT or unix:PATH", l)
	}
	if ap.Addr().IsLoopback() {
		return nil
	}
	if c.API.TokenFile == "" && len(roles) == 0 && !c.API.GluetunAuth {
		return fmt.Errorf("api.listen (--api) %s is reachable from other hosts and has no authentication: "+
			"set api.token_file (--api-token-file FILE) so requests need a token, or a role with a key or password "+
			"(--api-auth-default-role '{\"auth\":\"apikey\",\"apikey\":\"...\"}', or gluetun's auth file --api-auth-config); "+
			"to open it to everyone who reaches it, say so with --api-auth-default-role '{\"auth\":\"none\"}'; or keep it on 127.0.0.1", l)
	}
	for _, r := range roles {
		if r.Open() && len(r.Routes) > 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("api: role %q has auth \"none\": anyone who reaches %s may call %s without credentials", r.Name, l, routeList(r.Routes)))
		}
	}
	return nil
}

// routeList names a few routes, and how many more.
func routeList(routes []string) string {
	if len(routes) <= 3 {
		return strings.Join(routes, ", ")
	}
	return fmt.Sprintf("%s and %d more routes", strings.Join(routes[:3], ", "), len(routes)-3)
}

// FileOwner is the port file's owner ("UID:GID"), nil if none is set.
func (p Publish) FileOwner() (*publish.Owner, error) {
	if p.Owner == "" {
		return nil, nil
	}
	u, g, ok := strings.Cut(p.Owner, ":")
	uid, err1 := strconv.ParseUint(u, 10, 31)
	gid, err2 := strconv.ParseUint(g, 10, 31)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("owner = %q: want UID:GID, such as 1000:1000", p.Owner)
	}
	return &publish.Owner{UID: int(uid), GID: int(gid)}, nil
}
