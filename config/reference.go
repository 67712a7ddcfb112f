package config

import (
	"flag"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// The configuration reference (`vpnfwd options`, docs/configuration.md) is
// made here from the option table itself, so it cannot drift from what
// vpnfwd reads: Options for flags and environment variables, Config's
// TOML tags for the keys only a file has (FileOnly says what each means,
// and a test fails when a key has no entry), the providers' Options for
// [provider].

// FileOnly says what each TOML key means that no flag sets (a flag's key is
// documented by its Usage). Keys are as Keys lists them.
var FileOnly = map[string]string{
	"wireguard.private_key":                   "the tunnel's private key, inline instead of a wg-quick file (`[redacted]` wherever it is shown)",
	"wireguard.address":                       "the tunnel's addresses (CIDR), inline",
	"wireguard.dns":                           "the tunnel's DNS servers, inline",
	"wireguard.mtu":                           "the tunnel's MTU",
	"wireguard.listen_port":                   "the local UDP port of the WireGuard socket (default: any)",
	"[[wireguard.peer]] public_key":           "the server's public key",
	"[[wireguard.peer]] preshared_key":        "a preshared key",
	"[[wireguard.peer]] endpoint":             "the server's `HOST:PORT`",
	"[[wireguard.peer]] allowed_ips":          "what goes through this peer (CIDRs)",
	"[[wireguard.peer]] persistent_keepalive": "seconds between keepalives (0: none)",
	"forward.udp_idle_timeout":                "a remote UDP peer's flow closes after this idle time",
	"forward.max_pending_handshakes":          "half-open TCP handshakes on the forwarded port; beyond it the oldest is aborted",
	"forward.max_pending_per_source":          "half-open TCP handshakes from one address; beyond it SYNs are ignored",
	"proxy.password":                          "the proxies' password inline (prefer `password_file`)",
	"[[publish]] type":                        "`file`, `exec`, `qbittorrent`, `transmission` or `deluge`",
	"[[publish]] path":                        "file: where the ports are written (as gluetun writes them: in place, one per line)",
	"[[publish]] command":                     "exec: the command, `{{PORT}}`, `{{PORTS}}`, `{{VPN_INTERFACE}}` replaced; run without a shell",
	"[[publish]] on":                          "exec: `port` (each new port, the default) or `lost` (the ports given up)",
	"[[publish]] shell":                       "exec: run the command with `/bin/sh -c`",
	"[[publish]] timeout":                     "exec: how long the command may run (default 30s)",
	"[[publish]] url":                         "torrent client: its Web UI or RPC URL (credentials in it are taken as username and password)",
	"[[publish]] username":                    "torrent client: the login name",
	"[[publish]] password":                    "torrent client: the password inline (prefer `password_file`)",
	"[[publish]] password_file":               "torrent client: a file holding the password, read again at every login",
	"[[publish]] api_key":                     "qBittorrent 5.2+: an API key inline (prefer `api_key_file`)",
	"[[publish]] api_key_file":                "qBittorrent 5.2+: a file holding an API key",
	"[[publish]] check_interval":              "torrent client: how often its port is read back and put right (default 60s)",
	"[[publish]] multi_connections":           "qBittorrent: accept several peers from one address (bridged peers share 127.0.0.1)",
	"[[publish]] use_proxy":                   "qBittorrent: trackers and name lookups through vpnfwd's SOCKS5 (needs the kill switch)",
	"[[publish]] owner":                       "file: `UID:GID` given the port file after each write (gluetun's PUID and PGID, as root)",
	"[[publish]] bind_interface":              "qBittorrent: bind it to the tunnel's interface (tun mode and exec)",
}

// Defaults that Defaults() cannot show (applied later, or depending on the
// machine or the data plane), by TOML key.
var documentedDefaults = map[string]string{
	"failover_after":            "5s",
	"wireguard.name":            "vpnfwd",
	"wireguard.tun":             "off (netstack)",
	"dns.listen":                "off; 127.0.0.1:53 in tun mode",
	"port_check.every":          "5m",
	"killswitch.table":          "vpnfwd",
	"killswitch.only_uid":       "the whole namespace",
	"state_dir":                 "`$XDG_STATE_HOME/vpnfwd`, `~/.local/state/vpnfwd`, or `/var/lib/vpnfwd` as root",
	"wireguard.mtu":             "1420",
	"servers.port_forward_only": "on with protonvpn (its port-forwarding servers), as gluetun with port forwarding on",
}

// Keys lists every TOML key of Config but the provider's own (a table of
// arrays is written "[[name]] key"), in the order of Config's fields.
func Keys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			ft := f.Type
			switch {
			case ft == reflect.TypeFor[Provider]():
				keys = append(keys, "provider.name")
			case ft.Kind() == reflect.Struct && !isValue(ft):
				walk(ft, prefix+tag+".")
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !isValue(ft.Elem()):
				table := "[[" + prefix + tag + "]] "
				for j := range ft.Elem().NumField() {
					if k := strings.Split(ft.Elem().Field(j).Tag.Get("toml"), ",")[0]; k != "" && k != "-" {
						keys = append(keys, table+k)
					}
				}
			default:
				keys = append(keys, prefix+tag)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// isValue: a struct type TOML reads as one value (it decodes itself from
// text, as netip.Prefix or Duration do).
func isValue(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]())
}

// Default is the default of a TOML key as text ("" for none).
func Default(key string) string {
	if d, ok := documentedDefaults[key]; ok {
		return d
	}
	if strings.HasPrefix(key, "[[") {
		return ""
	}
	v := reflect.ValueOf(Defaults())
	for _, part := range strings.Split(key, ".") {
		if v.Kind() != reflect.Struct {
			return ""
		}
		found := false
		for i := range v.NumField() {
			if strings.Split(v.Type().Field(i).Tag.Get("toml"), ",")[0] == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return ""
		}
	}
	if v.IsZero() {
		return ""
	}
	switch x := v.Interface().(type) {
	case Duration:
		return shortDuration(time.Duration(x))
	case []string:
		return strings.Join(x, ",")
	}
	return fmt.Sprint(v.Interface())
}

// shortDuration writes d without zero trailing units: 2m, 15m, 1h, 30s
// (time.Duration's String gives 2m0s).
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// RefRow is one line of the reference.
type RefRow struct {
	Flag    string // "--wg-config FILE", or "" for a file-only key
	Env     string
	Key     string
	Default string
	Meaning string
}

// Reference is the reference of vpnfwd's own settings: every option (its
// flag, variable, key, default), then the keys only a file has.
func Reference() (options, fileOnly []RefRow) {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[k] = true
	}
	covered := map[string]bool{}
	table := ""
	for _, o := range Options {
		name, usage := flag.UnquoteUsage(&flag.Flag{Name: o.Flag, Usage: o.Usage, Value: refValue(o.Bool)})
		fl := "--" + o.Flag
		if name != "" {
			fl += " " + name
		}
		key := o.Key
		switch {
		case known[key]:
			covered[key] = true
		case strings.HasPrefix(key, "[[publish]]"):
			table = strings.TrimSuffix(key, " url")
		case table != "":
			key = table + " " + key // a torrent client's own key, in its [[publish]] table
		}
		def := Default(o.Key)
		if def == "" && o.Bool {
			def = "false"
		}
		options = append(options, RefRow{Flag: fl, Env: EnvName(o.Flag), Key: key, Default: def, Meaning: usage})
	}
	for _, k := range Keys() {
		if covered[k] {
			continue
		}
		if m := FileOnly[k]; m != "" {
			fileOnly = append(fileOnly, RefRow{Key: k, Default: Default(k), Meaning: m})
		}
	}
	return options, fileOnly
}

// Undocumented lists the TOML keys that neither a flag's option nor
// FileOnly describes (a test keeps it empty).
func Undocumented() []string {
	covered := map[string]bool{}
	for _, o := range Options {
		covered[o.Key] = true
	}
	var out []string
	for _, k := range Keys() {
		if !covered[k] && FileOnly[k] == "" {
			out = append(out, k)
		}
	}
	return out
}

// refValue gives flag.UnquoteUsage the kind of value: bool flags take none.
func refValue(isBool bool) flag.Value {
	if isBool {
		return boolString{}
	}
	return new(listString)
}

// ProviderRow is one provider option as the reference lists it.
func ProviderRow(o provider.Option) RefRow {
	name, usage := flag.UnquoteUsage(&flag.Flag{Usage: o.Usage, Value: new(listString)})
	r := RefRow{Key: "provider." + o.Key, Meaning: usage}
	if o.Flag != "" {
		r.Flag = "--" + o.Flag
		if name != "" && name != "value" {
			r.Flag += " " + name
		}
		r.Env = EnvName(o.Flag)
	}
	return r
}

// Markdown renders the reference as docs/configuration.md holds it between
// its markers.
func Markdown(providers provider.List) string {
	var b strings.Builder
	cell := func(s string) string {
		return strings.NewReplacer("|", `\|`, "*", `\*`, "<", "&lt;", "\n", " ").Replace(s)
	}
	code := func(s string) string {
		if s == "" {
			return ""
		}
		return "`" + s + "`"
	}
	options, fileOnly := Reference()
	b.WriteString("### Settings of `vpnfwd up` and `vpnfwd exec`\n\n")
	b.WriteString("| flag | environment | TOML key | default | meaning |\n|---|---|---|---|---|\n")
	for _, r := range options {
		def := r.Default
		if def != "" && !strings.Contains(def, "`") {
			def = code(def)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", code(r.Flag), code(r.Env), code(r.Key), cell(def), cell(r.Meaning))
	}
	b.WriteString("\n### Keys only a TOML file has\n\n")
	b.WriteString("| TOML key | default | meaning |\n|---|---|---|\n")
	for _, r := range fileOnly {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", code(r.Key), code(r.Default), cell(r.Meaning))
	}
	b.WriteString("\n### Each provider's `[provider]` keys\n")
	for _, p := range providers {
		fmt.Fprintf(&b, "\n**`%s`**: %s. Needs: %s. Port: %s. Renewal: %s.\n", p.Name, strings.TrimSuffix(p.Summary, "."), strings.TrimSuffix(p.Needs, "."), strings.TrimSuffix(p.Port, "."), strings.TrimSuffix(p.Renewal, "."))
		if len(p.Options) == 0 {
			continue
		}
		b.WriteString("\n| TOML key | flag | environment | meaning |\n|---|---|---|---|\n")
		for _, o := range p.Options {
			r := ProviderRow(o)
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", code(r.Key), code(r.Flag), code(r.Env), cell(r.Meaning))
		}
	}
	return b.String()
}
