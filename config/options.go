package config

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vpnfwd/vpnfwd/portcheck"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/secret"
)

// Option is one setting that can be given as a flag, a VPNFWD_* environment
// variable, or a TOML key.
type Option struct {
	Flag  string // flag name without dashes
	Key   string // TOML key it overrides
	Usage string
	Bool  bool
	// List: the flag may be repeated; its values are joined with ",".
	List bool
	// Secret: the value is a secret. Given as a flag, it is blanked from
	// vpnfwd's command line once read (/proc/PID/cmdline, which every
	// user can read), and a warning points to the file form or the
	// environment.
	Secret bool
	Set    func(c *Config, v string) error
}

// EnvName is the environment variable for a flag: VPNFWD_ + upper case.
func EnvName(flagName string) string {
	return "VPNFWD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// AllOptions lists every setting of `vpnfwd up`: Options, then each of the
// providers' (provider.Info.Options), a flag shared by several providers
// once.
func AllOptions(providers provider.List) []Option {
	all := append([]Option(nil), Options...)
	seen := map[string]bool{}
	for _, info := range providers {
		for _, po := range info.Options {
			if po.Flag == "" || seen[po.Flag] {
				continue
			}
			seen[po.Flag] = true
			key, kind := po.Key, po.Kind
			all = append(all, Option{Flag: po.Flag, Key: "provider." + key, Usage: po.Usage, Secret: kind == provider.Secret, Set: func(c *Config, v string) error {
				if kind == provider.Secret {
					c.Provider.Set(key, secret.String(v))
				} else {
					c.Provider.Set(key, v)
				}
				return nil
			}})
		}
	}
	return all
}

// Options lists vpnfwd's own settings of `vpnfwd up`; AllOptions adds the
// providers'.
var Options = []Option{
	{Flag: "wg-config", Key: "wireguard.config", List: true, Usage: "wg-quick `FILE` from your VPN provider; several (repeat the flag, or FILE,FILE, or a directory of *.conf) are servers to fail over to, in order", Set: func(c *Config, v string) error {
		var abs []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			a, err := filepath.Abs(p)
			if err != nil {
				return err
			}
			abs = append(abs, a)
		}
		c.WireGuard.Config = strings.Join(abs, ",")
		return nil
	}},
	{Flag: "failover-after", Key: "failover_after", Usage: "`DURATION` the tunnel may stay down, or the port dead or unobtainable, before vpnfwd moves to the next server (several --wg-config files; PIA: the region's next server) (default 5s)", Set: func(c *Config, v string) error {
		d, err := parseDuration(v)
		c.FailoverAfter = Duration(d)
		return err
	}},
	{Flag: "wg-name", Key: "wireguard.name", Usage: "`NAME` for WireGuard's tools (`wg show NAME`; default vpnfwd; \"-\" serves no control socket)", Set: func(c *Config, v string) error {
		if v == "" {
			return errors.New(`"" names no device: give a name (default vpnfwd), or "-" for no control socket`)
		}
		c.WireGuard.Name = v
		return nil
	}},
	{Flag: "tun", Key: "wireguard.tun", Usage: "run WireGuard on a kernel TUN `NAME` in this network namespace and route everything through it (needs CAP_NET_ADMIN and /dev/net/tun)", Set: func(c *Config, v string) error { c.WireGuard.Tun = v; return nil }},
	{Flag: "provider", Key: "provider.name", Usage: "port-forwarding provider `NAME` (see 'vpnfwd providers')", Set: func(c *Config, v string) error { c.Provider.Name = v; return nil }},
	{Flag: "forward", Key: "forward.target", Usage: "local service `HOST[:PORT]` (no port: same as forwarded)", Set: func(c *Config, v string) error { c.Forward.Target = v; return nil }},
	{Flag: "local-forward", Key: "forward.local", List: true, Usage: "local forward `[BIND:]PORT=HOST:PORT[/udp]`: a listener on this host (BIND default 127.0.0.1) whose connections go to HOST:PORT through the tunnel, names looked up through it (repeatable)", Set: func(c *Config, v string) error {
		c.Forward.Local = splitList(v)
		return nil
	}},
	{Flag: "local-forward-allow", Key: "forward.local_allow", Usage: "`CIDR`[,CIDR...] that may use a local forward listening off loopback (loopback always may; required off loopback)", Set: func(c *Config, v string) error { c.Forward.LocalAllow = splitList(v); return nil }},
	{Flag: "nat-pmp", Key: "forward.nat_pmp", Bool: true, Usage: "answer the NAT-PMP and PCP requests of the apps in the namespace (tun mode, exec) with a port vpnfwd holds, and send that port to the app's (default true; false leaves them unanswered)", Set: func(c *Config, v string) error {
		b, err := parseBool(v)
		c.Forward.NATPMP = b
		return err
	}},
	{Flag: "upnp", Key: "forward.upnp", Bool: true, Usage: "be the UPnP Internet Gateway Device of the apps in the namespace (tun mode, exec): answer their SSDP discovery and IGD requests with a port vpnfwd holds, as NAT-PMP's (default true; false leaves them unanswered)", Set: func(c *Config, v string) error {
		b, err := parseBool(v)
		c.Forward.UPnP = b
		return err
	}},
	{Flag: "protocols", Key: "forward.protocols", Usage: "`LIST` of protocols to bridge: tcp,udp", Set: func(c *Config, v string) error { c.Forward.Protocols = splitList(v); return nil }},
	{Flag: "socks5", Key: "proxy.socks5", Usage: "SOCKS5 proxy `ADDR` (\"\" turns it off)", Set: func(c *Config, v string) error { c.Proxy.SOCKS5 = v; return nil }},
	{Flag: "http-proxy", Key: "proxy.http", Usage: "HTTP proxy `ADDR` (\"\" turns it off)", Set: func(c *Config, v string) error { c.Proxy.HTTP = v; return nil }},
	{Flag: "proxy-username", Key: "proxy.username", Usage: "`USER` the SOCKS5 and HTTP proxies require (with --proxy-password-file)", Set: func(c *Config, v string) error { c.Proxy.Username = v; return nil }},
	{Flag: "proxy-password-file", Key: "proxy.password_file", Usage: "`FILE` holding the proxies' password", Set: func(c *Config, v string) error { c.Proxy.PasswordFile = v; return nil }},
	{Flag: "dns-allow", Key: "dns.allow", Usage: "`CIDR`[,CIDR...] that may ask a DNS forwarder listening off loopback (loopback always may; required off loopback)", Set: func(c *Config, v string) error { c.DNS.Allow = splitList(v); return nil }},
	{Flag: "dns-listen", Key: "dns.listen", Usage: "answer DNS on `ADDR` (UDP and TCP, e.g. 127.0.0.1:53) through the tunnel's DNS servers (default in tun mode 127.0.0.1:53; \"off\" turns it off)", Set: func(c *Config, v string) error { c.DNS.Listen = v; return nil }},
	{Flag: "dns-resolv-conf", Key: "dns.resolv_conf", Bool: true, Usage: "point /etc/resolv.conf at the DNS forwarder while vpnfwd runs (restored at exit)", Set: func(c *Config, v string) error {
		b, err := parseBool(v)
		c.DNS.ResolvConf = b
		return err
	}},
	{Flag: "public-ip-url", Key: "public_ip_url", Secret: true, Usage: "`URL` asked through the tunnel for the public address when the provider does not give it (plain text or ipinfo.io's JSON, e.g. https://ipinfo.io/json; default off)", Set: func(c *Config, v string) error { c.PublicIPURL = v; return nil }},
	{Flag: "port-check", Key: "port_check.url", Usage: "outside port checker `URL` with {port} (and {ip}), asked through the tunnel every few minutes and after each recovery; two 'closed' in a row make the port dead, no answer is never 'closed' (e.g. " + portcheck.Transmission + "; default off)", Set: func(c *Config, v string) error { c.PortCheck.URL = v; return nil }},
	{Flag: "port-check-every", Key: "port_check.every", Usage: "`DURATION` between outside port checks while the port is fine (default 5m)", Set: func(c *Config, v string) error {
		d, err := parseDuration(v)
		c.PortCheck.Every = Duration(d)
		return err
	}},
	{Flag: "api", Key: "api.listen", Usage: "control API `ADDR` or unix:PATH (\"\" turns it off)", Set: func(c *Config, v string) error { c.API.Listen = v; return nil }},
	{Flag: "api-allowed-hosts", Key: "api.allowed_hosts", Usage: "`LIST` of Host names the API answers besides loopback (\"*\": any)", Set: func(c *Config, v string) error { c.API.AllowedHosts = splitList(v); return nil }},
	{Flag: "api-token-file", Key: "api.token_file", Usage: "`FILE` holding the API bearer token", Set: func(c *Config, v string) error { c.API.TokenFile = v; return nil }},
	{Flag: "api-auth-config", Key: "api.auth_config", Usage: "gluetun's control-server auth `FILE` (TOML [[roles]] with routes and auth none, apikey or basic)", Set: func(c *Config, v string) error { c.API.AuthConfig = v; return nil }},
	{Flag: "api-auth-default-role", Key: "api.auth_default_role", Secret: true, Usage: "`JSON` role for routes no role names, as gluetun's HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE ({\"auth\":\"apikey\",\"apikey\":\"...\"}; a key or password in it: prefer --api-auth-default-role-file)", Set: func(c *Config, v string) error { c.API.AuthDefaultRole = v; return nil }},
	{Flag: "api-auth-default-role-file", Key: "api.auth_default_role_file", Usage: "`FILE` holding --api-auth-default-role's JSON (it holds the key or password)", Set: func(c *Config, v string) error { c.API.AuthDefaultRoleFile = v; return nil }},
	{Flag: "port-file", Key: "[[publish]] type=\"file\"", Usage: "write the forwarded port to `FILE`", Set: func(c *Config, v string) error {
		c.Publish = append(c.Publish, Publish{Type: "file", Path: v})
		return nil
	}},
	{Flag: "on-port", Key: "[[publish]] type=\"exec\"", Usage: "run `CMD` on each new port (gluetun's VPN_PORT_FORWARDING_UP_COMMAND): {{PORT}} is the port, {{PORTS}} all of them, {{VPN_INTERFACE}} the tunnel's interface", Set: func(c *Config, v string) error {
		c.Publish = append(c.Publish, Publish{Type: "exec", Command: v})
		return nil
	}},
	{Flag: "on-port-lost", Key: "[[publish]] type=\"exec\" on=\"lost\"", Usage: "run `CMD` with the ports given up in {{PORT}}/{{PORTS}} when the port is lost, changes (before --on-port's command) or is released at exit (gluetun's VPN_PORT_FORWARDING_DOWN_COMMAND)", Set: func(c *Config, v string) error {
		c.Publish = append(c.Publish, Publish{Type: "exec", Command: v, On: "lost"})
		return nil
	}},
	{Flag: "qbittorrent", Key: "[[publish]] type=\"qbittorrent\" url", Usage: "keep qBittorrent's Web UI at `URL` on the forwarded port", Set: setClient("qbittorrent", func(p *Publish, v string) { p.URL = v })},
	{Flag: "qbittorrent-user", Key: "username", Usage: "qBittorrent Web UI `USER`", Set: setClient("qbittorrent", func(p *Publish, v string) { p.Username = v })},
	{Flag: "qbittorrent-password", Key: "password", Secret: true, Usage: "qBittorrent `PASSWORD` (prefer --qbittorrent-password-file or the environment)", Set: setClient("qbittorrent", func(p *Publish, v string) { p.Password = secret.String(v) })},
	{Flag: "qbittorrent-password-file", Key: "password_file", Usage: "`FILE` holding the qBittorrent password", Set: setClient("qbittorrent", func(p *Publish, v string) { p.PasswordFile = v })},
	{Flag: "qbittorrent-api-key-file", Key: "api_key_file", Usage: "`FILE` holding a qBittorrent 5.2+ API key", Set: setClient("qbittorrent", func(p *Publish, v string) { p.APIKeyFile = v })},
	{Flag: "qbittorrent-multi-connections", Key: "multi_connections", Bool: true, Usage: "let qBittorrent accept several peers from one address (bridged peers share 127.0.0.1)", Set: setClientBool("qbittorrent", func(p *Publish, b bool) { p.MultiConnections = b })},
	{Flag: "qbittorrent-bind-interface", Key: "bind_interface", Bool: true, Usage: "bind qBittorrent to the tunnel's interface (its current_network_interface; tun mode and exec), so it refuses every other link", Set: setClientBool("qbittorrent", func(p *Publish, b bool) { p.BindInterface = b })},
	{Flag: "qbittorrent-proxy", Key: "use_proxy", Bool: true, Usage: "point qBittorrent's trackers and name lookups at vpnfwd's SOCKS5 (needs --killswitch; peers still come in through the forwarded port)", Set: setClientBool("qbittorrent", func(p *Publish, b bool) { p.UseProxy = b })},
	{Flag: "transmission", Key: "[[publish]] type=\"transmission\" url", Usage: "keep Transmission's RPC at `URL` on the forwarded port", Set: setClient("transmission", func(p *Publish, v string) { p.URL = v })},
	{Flag: "transmission-user", Key: "username", Usage: "Transmission RPC `USER`", Set: setClient("transmission", func(p *Publish, v string) { p.Username = v })},
	{Flag: "transmission-password", Key: "password", Secret: true, Usage: "Transmission RPC `PASSWORD` (prefer --transmission-password-file or the environment)", Set: setClient("transmission", func(p *Publish, v string) { p.Password = secret.String(v) })},
	{Flag: "transmission-password-file", Key: "password_file", Usage: "`FILE` holding the Transmission password", Set: setClient("transmission", func(p *Publish, v string) { p.PasswordFile = v })},
	{Flag: "deluge", Key: "[[publish]] type=\"deluge\" url", Usage: "keep Deluge (deluge-web at `URL`) on the forwarded port", Set: setClient("deluge", func(p *Publish, v string) { p.URL = v })},
	{Flag: "deluge-password", Key: "password", Secret: true, Usage: "deluge-web `PASSWORD` (prefer --deluge-password-file or the environment)", Set: setClient("deluge", func(p *Publish, v string) { p.Password = secret.String(v) })},
	{Flag: "deluge-password-file", Key: "password_file", Usage: "`FILE` holding the deluge-web password", Set: setClient("deluge", func(p *Publish, v string) { p.PasswordFile = v })},
	{Flag: "per-peer-source", Key: "forward.per_peer_source", Bool: true, Usage: "give each remote peer its own loopback source address (127.x.y.z) toward the local service", Set: func(c *Config, v string) error {
		b, err := parseBool(v)
		c.Forward.PerPeerSource = b
		return err
	}},
	{Flag: "max-connections", Key: "forward.max_connections", Usage: "bridged TCP connections at once (`N`); over it the idlest is closed", Set: setInt(func(c *Config) *int { return &c.Forward.MaxConnections })},
	{Flag: "max-connections-per-source", Key: "forward.max_connections_per_source", Usage: "bridged TCP connections from one remote address (`N`)", Set: setInt(func(c *Config) *int { return &c.Forward.MaxConnectionsPerSource })},
	{Flag: "idle-timeout", Key: "forward.idle_timeout", Usage: "close a bridged TCP connection idle this `DURATION`", Set: func(c *Config, v string) error { return c.Forward.IdleTimeout.UnmarshalText([]byte(v)) }},
	{Flag: "max-udp-flows", Key: "forward.max_udp_flows", Usage: "UDP peers bridged at once (`N`)", Set: setInt(func(c *Config) *int { return &c.Forward.MaxUDPFlows })},
	{Flag: "max-udp-flows-per-source", Key: "forward.max_udp_flows_per_source", Usage: "UDP peers from one remote address (`N`)", Set: setInt(func(c *Config) *int { return &c.Forward.MaxUDPFlowsPerSource })},
	{Flag: "killswitch", Key: "killswitch.enabled", Bool: true, Usage: "nftables rules so nothing but vpnfwd's WireGuard socket leaves (needs CAP_NET_ADMIN)", Set: func(c *Config, v string) error {
		b, err := parseBool(v)
		c.KillSwitch.Enabled = b
		return err
	}},
	{Flag: "killswitch-table", Key: "killswitch.table", Usage: "nftables `TABLE` for the kill switch (default vpnfwd; one per vpnfwd in a namespace)", Set: func(c *Config, v string) error { c.KillSwitch.Table = v; return nil }},
	{Flag: "server-list", Key: "servers.list", Usage: "gluetun's server list `FILE` (/gluetun/servers.json) to pick the server from, with the --server-* filters, instead of a wg-quick file; the [wireguard] key and addresses are used on every server it selects", Set: func(c *Config, v string) error { c.ServerList.List = v; return nil }},
	{Flag: "server-countries", Key: "servers.countries", Usage: "`LIST` of countries to pick servers in (as the list names them: Netherlands), as gluetun's SERVER_COUNTRIES", Set: func(c *Config, v string) error { c.ServerList.Countries = splitList(v); return nil }},
	{Flag: "server-regions", Key: "servers.regions", Usage: "`LIST` of regions, as gluetun's SERVER_REGIONS", Set: func(c *Config, v string) error { c.ServerList.Regions = splitList(v); return nil }},
	{Flag: "server-cities", Key: "servers.cities", Usage: "`LIST` of cities, as gluetun's SERVER_CITIES", Set: func(c *Config, v string) error { c.ServerList.Cities = splitList(v); return nil }},
	{Flag: "server-hostnames", Key: "servers.hostnames", Usage: "`LIST` of server hostnames, as gluetun's SERVER_HOSTNAMES", Set: func(c *Config, v string) error { c.ServerList.Hostnames = splitList(v); return nil }},
	{Flag: "server-names", Key: "servers.names", Usage: "`LIST` of server names (NL#42), as gluetun's SERVER_NAMES", Set: func(c *Config, v string) error { c.ServerList.Names = splitList(v); return nil }},
	{Flag: "port-forward-only", Key: "servers.port_forward_only", Bool: true, Usage: "pick only servers that forward ports (on by default with protonvpn)", Set: func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.ServerList.PortForwardOnly = &b
		return err
	}},
	{Flag: "free-only", Key: "servers.free_only", Bool: true, Usage: "pick only free servers", Set: func(c *Config, v string) (err error) { c.ServerList.FreeOnly, err = strconv.ParseBool(v); return err }},
	{Flag: "secure-core-only", Key: "servers.secure_core_only", Bool: true, Usage: "pick only Secure Core servers (Proton)", Set: func(c *Config, v string) (err error) {
		c.ServerList.SecureCoreOnly, err = strconv.ParseBool(v)
		return err
	}},
	{Flag: "tor-only", Key: "servers.tor_only", Bool: true, Usage: "pick only Tor servers (Proton)", Set: func(c *Config, v string) (err error) { c.ServerList.TorOnly, err = strconv.ParseBool(v); return err }},
	{Flag: "stream-only", Key: "servers.stream_only", Bool: true, Usage: "pick only streaming servers", Set: func(c *Config, v string) (err error) { c.ServerList.StreamOnly, err = strconv.ParseBool(v); return err }},
	{Flag: "allow-lan", Key: "killswitch.allow_lan", Usage: "`CIDR`[,CIDR...] the kill switch lets through (your LAN)", Set: func(c *Config, v string) error { c.KillSwitch.AllowLAN = splitList(v); return nil }},
	{Flag: "allow-local-subnets", Key: "killswitch.allow_local_subnets", Bool: true, Usage: "let the kill switch pass the subnets of this namespace's own interfaces (a container's network, so its published ports work), as gluetun's firewall does", Set: func(c *Config, v string) error {
		b, err := parseBool(v)
		c.KillSwitch.AllowLocalSubnets = b
		return err
	}},
	{Flag: "lockdown", Key: "killswitch.lockdown", Bool: true, Usage: "keep the kill switch rules after vpnfwd exits", Set: func(c *Config, v string) error {
		b, err := parseBool(v)
		c.KillSwitch.Lockdown = b
		return err
	}},
	{Flag: "only-uid", Key: "killswitch.only_uid", Usage: "confine only this `UID`'s traffic (default: the whole namespace)", Set: func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a user id", v)
		}
		c.KillSwitch.OnlyUID = &n
		return nil
	}},
	{Flag: "only-cgroup", Key: "killswitch.only_cgroup", Usage: "confine only this cgroup v2 `PATH` (below /sys/fs/cgroup)", Set: func(c *Config, v string) error { c.KillSwitch.OnlyCgroup = v; return nil }},
	{Flag: "state-dir", Key: "state_dir", Usage: "`DIR` for leases and the last port", Set: func(c *Config, v string) error { c.StateDir = v; return nil }},
	{Flag: "log-level", Key: "log_level", Usage: "`LEVEL`: debug, info, warn or error", Set: func(c *Config, v string) error { c.LogLevel = v; return nil }},
}

// setInt sets the int field that field returns from a decimal value.
func setInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*field(c) = n
		return nil
	}
}

// clientEntry returns the [[publish]] entry of that type, adding one.
func clientEntry(c *Config, typ string) *Publish {
	for i := range c.Publish {
		if c.Publish[i].Type == typ {
			return &c.Publish[i]
		}
	}
	c.Publish = append(c.Publish, Publish{Type: typ})
	return &c.Publish[len(c.Publish)-1]
}

func setClient(typ string, f func(*Publish, string)) func(*Config, string) error {
	return func(c *Config, v string) error { f(clientEntry(c, typ), v); return nil }
}

// parseBool reads true/false (and 1/0, yes/no, on/off).
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "yes", "on":
		return true, nil
	case "0", "f", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q: want true or false", v)
}

func setClientBool(typ string, f func(*Publish, bool)) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := parseBool(v)
		if err != nil {
			return err
		}
		f(clientEntry(c, typ), b)
		return nil
	}
}

// Flags binds Options to a FlagSet.
type Flags struct {
	fs        *flag.FlagSet
	config    *string
	vals      map[string]*string
	providers provider.List
}

type boolString struct{ s *string }

func (b boolString) String() string { return "" }
func (b boolString) Set(v string) error {
	if v == "" {
		v = "true"
	}
	*b.s = v
	return nil
}
func (b boolString) IsBoolFlag() bool { return true }

// listString is a flag that may be repeated: its values are joined with ",".
type listString struct{ s *string }

func (l listString) String() string { return "" }
func (l listString) Set(v string) error {
	if *l.s != "" {
		v = *l.s + "," + v
	}
	*l.s = v
	return nil
}

// RegisterFlags adds --config, every Option and the providers' options to
// fs; the configuration Load makes knows those providers.
func RegisterFlags(fs *flag.FlagSet, providers provider.List) *Flags {
	f := &Flags{fs: fs, vals: map[string]*string{}, providers: providers}
	f.config = fs.String("config", "", "TOML config `FILE`")
	for _, o := range AllOptions(providers) {
		v := new(string)
		f.vals[o.Flag] = v
		switch {
		case o.Bool:
			fs.Var(boolString{v}, o.Flag, o.Usage)
		case o.List:
			fs.Var(listString{v}, o.Flag, o.Usage)
		default:
			fs.Var(argString{v, o.Secret}, o.Flag, o.Usage)
		}
	}
	return f
}

// Load builds the configuration after fs.Parse: defaults, then the TOML
// file (--config or VPNFWD_CONFIG), then environment, then flags.
//
// lookup is os.LookupEnv or a stand-in; a variable set to "" counts as set
// (VPNFWD_SOCKS5= turns the proxy off).
func (f *Flags) Load(lookup func(string) (string, bool)) (*Config, error) {
	cfg := Defaults()
	cfg.Providers = f.providers
	path := *f.config
	if path == "" {
		path, _ = lookup("VPNFWD_CONFIG")
	}
	if path != "" {
		if err := LoadFile(&cfg, path); err != nil {
			return nil, err
		}
	}
	all := AllOptions(f.providers)
	if gluetunSeen(lookup) {
		byFlag := func(name, v string) error {
			for _, o := range all {
				if o.Flag == name {
					return o.Set(&cfg, v)
				}
			}
			return fmt.Errorf("no option %q", name)
		}
		if err := applyGluetun(&cfg, lookup, byFlag); err != nil {
			return nil, err
		}
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, o := range AllOptions(f.providers) {
		if v, ok := lookup(EnvName(o.Flag)); ok && !set[o.Flag] {
			if err := o.Set(&cfg, v); err != nil {
				return nil, fmt.Errorf("%s: %w", EnvName(o.Flag), err)
			}
		}
	}
	for _, o := range all {
		if set[o.Flag] {
			if err := o.Set(&cfg, *f.vals[o.Flag]); err != nil {
				return nil, fmt.Errorf("--%s: %w", o.Flag, err)
			}
			if w := cmdlineWarning(o, *f.vals[o.Flag], all); w != "" {
				cfg.Warnings = append(cfg.Warnings, w)
			}
		}
	}
	return &cfg, nil
}
