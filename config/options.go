package config

import (
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Option is one setting that can be given as a flag, a VPNFWD_* environment
// variable, or a TOML key.
type Option struct {
	Flag  string // flag name without dashes
	Key   string // TOML key it overrides
	Usage string
	Bool  bool
	Set   func(c *Config, v string) error
}

// EnvName is the environment variable for a flag: VPNFWD_ + upper case.
func EnvName(flagName string) string {
	return "VPNFWD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func setInt(dst *int) func(*Config, string) error {
	return func(_ *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		*dst = n
		return nil
	}
}

// Options lists every setting of `vpnfwd up`.
var Options = []Option{
	{Flag: "wg-config", Key: "wireguard.config", Usage: "wg-quick `FILE` from your VPN provider", Set: func(c *Config, v string) error {
		abs, err := filepath.Abs(v)
		c.WireGuard.Config = abs
		return err
	}},
	{Flag: "provider", Key: "provider.name", Usage: "port-forwarding provider `NAME` (see 'vpnfwd providers')", Set: func(c *Config, v string) error { c.Provider.Name = v; return nil }},
	{Flag: "gateway", Key: "provider.gateway", Usage: "NAT-PMP gateway `IP` (default: the config's first DNS server)", Set: func(c *Config, v string) error { c.Provider.Gateway = v; return nil }},
	{Flag: "port", Key: "provider.ports", Usage: "forwarded `PORT`[,PORT...] for the static provider", Set: func(c *Config, v string) error {
		c.Provider.Ports, c.Provider.Port = nil, 0
		for _, f := range splitList(v) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%q is not a port (1-65535)", f)
			}
			c.Provider.Ports = append(c.Provider.Ports, n)
		}
		return nil
	}},
	{Flag: "lifetime", Key: "provider.lifetime", Usage: "NAT-PMP mapping `DURATION` to ask for", Set: func(c *Config, v string) error { return c.Provider.Lifetime.UnmarshalText([]byte(v)) }},
	{Flag: "forward", Key: "forward.target", Usage: "local service `HOST[:PORT]` (no port: same as forwarded)", Set: func(c *Config, v string) error { c.Forward.Target = v; return nil }},
	{Flag: "protocols", Key: "forward.protocols", Usage: "`LIST` of protocols to bridge: tcp,udp", Set: func(c *Config, v string) error { c.Forward.Protocols = splitList(v); return nil }},
	{Flag: "socks5", Key: "proxy.socks5", Usage: "SOCKS5 proxy `ADDR` (\"\" turns it off)", Set: func(c *Config, v string) error { c.Proxy.SOCKS5 = v; return nil }},
	{Flag: "http-proxy", Key: "proxy.http", Usage: "HTTP proxy `ADDR` (\"\" turns it off)", Set: func(c *Config, v string) error { c.Proxy.HTTP = v; return nil }},
	{Flag: "api", Key: "api.listen", Usage: "control API `ADDR` or unix:PATH (\"\" turns it off)", Set: func(c *Config, v string) error { c.API.Listen = v; return nil }},
	{Flag: "api-token-file", Key: "api.token_file", Usage: "`FILE` holding the API bearer token", Set: func(c *Config, v string) error { c.API.TokenFile = v; return nil }},
	{Flag: "port-file", Key: "[[publish]] type=\"file\"", Usage: "write the forwarded port to `FILE`", Set: func(c *Config, v string) error {
		c.Publish = append(c.Publish, Publish{Type: "file", Path: v})
		return nil
	}},
	{Flag: "on-port", Key: "[[publish]] type=\"exec\"", Usage: "run `CMD` on each port change; {{port}} is replaced by the port", Set: func(c *Config, v string) error {
		c.Publish = append(c.Publish, Publish{Type: "exec", Command: v})
		return nil
	}},
	{Flag: "state-dir", Key: "state_dir", Usage: "`DIR` for leases and the last port", Set: func(c *Config, v string) error { c.StateDir = v; return nil }},
	{Flag: "log-level", Key: "log_level", Usage: "debug, info, warn or error", Set: func(c *Config, v string) error { c.LogLevel = v; return nil }},
}

// Flags binds Options to a FlagSet.
type Flags struct {
	fs     *flag.FlagSet
	config *string
	vals   map[string]*string
}

type boolString struct{ s *string }

func (b boolString) String() string     { return "" }
func (b boolString) Set(v string) error { *b.s = v; return nil }
func (b boolString) IsBoolFlag() bool   { return true }

// RegisterFlags adds --config and every Option to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, vals: map[string]*string{}}
	f.config = fs.String("config", "", "TOML config `FILE`")
	for _, o := range Options {
		v := new(string)
		f.vals[o.Flag] = v
		if o.Bool {
			fs.Var(boolString{v}, o.Flag, o.Usage)
		} else {
			fs.StringVar(v, o.Flag, "", o.Usage)
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
	path := *f.config
	if path == "" {
		path, _ = lookup("VPNFWD_CONFIG")
	}
	if path != "" {
		if err := LoadFile(&cfg, path); err != nil {
			return nil, err
		}
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, o := range Options {
		if v, ok := lookup(EnvName(o.Flag)); ok && !set[o.Flag] {
			if err := o.Set(&cfg, v); err != nil {
				return nil, fmt.Errorf("%s: %w", EnvName(o.Flag), err)
			}
		}
	}
	for _, o := range Options {
		if set[o.Flag] {
			if err := o.Set(&cfg, *f.vals[o.Flag]); err != nil {
				return nil, fmt.Errorf("--%s: %w", o.Flag, err)
			}
		}
	}
	return &cfg, nil
}
