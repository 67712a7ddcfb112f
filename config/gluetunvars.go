package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// gluetunVar is one variable of gluetun's that vpnfwd reads (or names as
// ignored), with the older names gluetun still reads for it
// (reader.RetroKeys in gluetun's internal/configuration/settings) and
// what vpnfwd does with it. The table is docs/gluetun.md's, generated
// (`vpnfwd options --gluetun`) and checked by a test, so the two cannot
// drift.
type gluetunVar struct {
	Name  string
	Retro []string // older names, read before Name as gluetun does
	Does  string   // what vpnfwd does with it ("" for a setting it ignores: see gluetunIgnored)
}

// gluetunVars are the variables vpnfwd reads, in docs/gluetun.md's order.
var gluetunVars = []gluetunVar{
	{"VPN_SERVICE_PROVIDER", []string{"VPNSP"}, "the provider (`protonvpn`, `private internet access`, `custom` for any NAT-PMP gateway, ...)"},
	{"VPN_PORT_FORWARDING_PROVIDER", nil, "the provider that forwards the port, when it is not the VPN's"},
	{"VPN_TYPE", nil, "`wireguard` (`openvpn` only for PIA, whose WireGuard tunnel vpnfwd makes with the same account)"},
	{"VPN_INTERFACE", []string{"OPENVPN_INTERFACE"}, "the TUN's name: `wg0` under WireGuard (gluetun's default), `tun0` for PIA's OpenVPN setting"},
	{"WIREGUARD_PRIVATE_KEY", nil, "the tunnel's key (a secret)"},
	{"WIREGUARD_ADDRESSES", []string{"WIREGUARD_ADDRESS"}, "the tunnel's addresses (Proton: `10.2.0.2/32` when not given)"},
	{"WIREGUARD_PUBLIC_KEY", nil, "the server's key"},
	{"WIREGUARD_ENDPOINT_IP", []string{"VPN_ENDPOINT_IP"}, "the server's address"},
	{"WIREGUARD_ENDPOINT_PORT", []string{"VPN_ENDPOINT_PORT"}, "the server's port (51820 when not given)"},
	{"WIREGUARD_PRESHARED_KEY", nil, "the peer's preshared key (a secret)"},
	{"WIREGUARD_ALLOWED_IPS", nil, "what goes through the tunnel (everything when not given)"},
	{"WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL", nil, "the peer's keepalive (a duration such as `25s`)"},
	{"WIREGUARD_MTU", nil, "the TUN's MTU"},
	{"VPN_PORT_FORWARDING", []string{"PORT_FORWARDING", "PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING"}, "on (off is logged and ignored: forwarding a port is what vpnfwd is for)"},
	{"VPN_PORT_FORWARDING_PORTS_COUNT", nil, "how many ports (Proton up to 4, others 1, as gluetun bounds it)"},
	{"VPN_PORT_FORWARDING_LISTENING_PORTS", []string{"VPN_PORT_FORWARDING_LISTENING_PORT"}, "the port the service listens on: the forwarded port is redirected to it (one port)"},
	{"VPN_PORT_FORWARDING_STATUS_FILE", []string{"PORT_FORWARDING_STATUS_FILE", "PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING_STATUS_FILE"}, "the port file (`/tmp/gluetun/forwarded_port`)"},
	{"VPN_PORT_FORWARDING_UP_COMMAND", nil, "the hook run with the new port (`{{PORT}}`, `{{PORTS}}`, `{{VPN_INTERFACE}}`)"},
	{"VPN_PORT_FORWARDING_DOWN_COMMAND", nil, "the hook run when the port goes (60 s to finish)"},
	{"VPN_PORT_FORWARDING_USERNAME", nil, "PIA's account name (else `OPENVPN_USER`, else `USER`, as gluetun)"},
	{"VPN_PORT_FORWARDING_PASSWORD", nil, "PIA's password (else `OPENVPN_PASSWORD`, else `PASSWORD`; a secret)"},
	{"OPENVPN_USER", []string{"USER"}, "PIA's account name, when `VPN_PORT_FORWARDING_USERNAME` is not given"},
	{"OPENVPN_PASSWORD", []string{"PASSWORD"}, "PIA's password, when `VPN_PORT_FORWARDING_PASSWORD` is not given"},
	{"SERVER_REGIONS", []string{"REGION"}, "PIA's region (the first); with a server list, the regions to pick servers in"},
	{"STORAGE_FILEPATH", nil, "gluetun's server list (`/gluetun/servers.json`), read when no server is given (no `WIREGUARD_ENDPOINT_IP` or `WIREGUARD_PUBLIC_KEY`); its matching servers are the failover list"},
	{"SERVER_COUNTRIES", []string{"COUNTRY"}, "the countries to pick servers in, as the list names them (`Netherlands`)"},
	{"SERVER_CITIES", []string{"CITY"}, "the cities to pick servers in"},
	{"SERVER_HOSTNAMES", []string{"SERVER_HOSTNAME"}, "the servers' hostnames to pick from"},
	{"SERVER_NAMES", []string{"SERVER_NAME"}, "the servers' names to pick from (`NL#42`)"},
	{"PORT_FORWARD_ONLY", nil, "only servers that forward ports (on by default for Proton and PIA, as gluetun with port forwarding on)"},
	{"FREE_ONLY", nil, "only free servers"},
	{"SECURE_CORE_ONLY", nil, "only Secure Core servers"},
	{"TOR_ONLY", nil, "only Tor servers"},
	{"STREAM_ONLY", nil, "only streaming servers"},
	{"PUID", []string{"UID"}, "the port file's user after each write, as root (1000 by default)"},
	{"PGID", []string{"GID"}, "the port file's group after each write, as root (1000 by default)"},
	{"FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT", []string{"FIREWALL"}, "the kill switch (on by default), the container's own subnets allowed"},
	{"FIREWALL_OUTBOUND_SUBNETS", []string{"EXTRA_SUBNETS"}, "more networks the kill switch lets through"},
	{"FIREWALL_INPUT_PORTS", nil, "nothing to do: the container's own subnets are let in"},
	{"DNS_ADDRESS", nil, "must be 127.0.0.1: vpnfwd's forwarder listens there"},
	{"HTTP_CONTROL_SERVER_ADDRESS", nil, "the control server (`:8000`)"},
	{"HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH", nil, "the control server's roles (`/gluetun/auth/config.toml`)"},
	{"HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE", nil, "the role of routes no role names (`{}`: none, those routes answer 401)"},
	{"PUBLICIP_ENABLED", nil, "asking ipinfo.io for the public IP where the provider does not say it"},
	{"PUBLICIP_PERIOD", nil, "`0` turns the public IP lookup off"},
	{"PUBLICIP_API", nil, "`ipinfo`, or a URL answering ipinfo.io's JSON"},
	{"PUBLICIP_API_TOKEN", nil, "ipinfo.io's token (a secret)"},
	{"HTTPPROXY", []string{"PROXY", "TINYPROXY"}, "vpnfwd's HTTP proxy"},
	{"HTTPPROXY_LISTENING_ADDRESS", nil, "where it listens (`:8888`; off loopback it needs a login)"},
	{"HTTPPROXY_USER", []string{"PROXY_USER", "TINYPROXY_USER"}, "its login"},
	{"HTTPPROXY_PASSWORD", []string{"PROXY_PASSWORD", "TINYPROXY_PASSWORD"}, "its password (a secret)"},
	{"SHADOWSOCKS", nil, "`on` is an error naming vpnfwd's HTTP and SOCKS5 proxies"},
}

// gluetunVar looks name up in the table.
func gluetunVarNamed(name string) (gluetunVar, bool) {
	i := slices.IndexFunc(gluetunVars, func(v gluetunVar) bool { return v.Name == name })
	if i < 0 {
		return gluetunVar{}, false
	}
	return gluetunVars[i], true
}

// gluetunLookup reads variables as gluetun does: a name of the table is
// read under its older names first (gluetun prefers what the user wrote
// long ago to what its image sets), then under its own; an empty value is
// not set; values are gluetunValue's. It records each older name in use.
func gluetunLookup(lookup func(string) (string, bool), older *[]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		names := []string{k}
		if v, ok := gluetunVarNamed(k); ok {
			names = append(slices.Clone(v.Retro), k)
		}
		for _, n := range names {
			raw, ok := lookup(n)
			if v := gluetunValue(raw); ok && v != "" {
				if n != k && !slices.Contains(*older, n+" → "+k) {
					*older = append(*older, n+" → "+k)
				}
				return v, true
			}
		}
		return "", false
	}
}

// gluetunValue is a value as gluetun's reader (qdm12/gosettings) gives it:
// spaces and line endings trimmed, and the quotes an env file or compose
// file left around it (`"protonvpn"`, `'on'`) taken off as a pair.
func gluetunValue(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = strings.TrimSpace(v[1 : len(v)-1])
	}
	return v
}

// gluetunBool reads gluetun's booleans: on/off, yes/no, true/false,
// enabled/disabled (gosettings' BoolPtr), and 1/0.
func gluetunBool(k, v string, dflt bool) (bool, error) {
	switch strings.ToLower(v) {
	case "":
		return dflt, nil
	case "on", "yes", "true", "enabled", "1":
		return true, nil
	case "off", "no", "false", "disabled", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q: want on or off (also yes/no, true/false, enabled/disabled)", k, v)
}

// GluetunMarkdown is docs/gluetun.md's table of the variables vpnfwd
// reads and ignores.
func GluetunMarkdown() string {
	var b strings.Builder
	b.WriteString("| gluetun variable (older names) | what vpnfwd does with it |\n|---|---|\n")
	for _, v := range gluetunVars {
		name := "`" + v.Name + "`"
		if len(v.Retro) > 0 {
			name += " (`" + strings.Join(v.Retro, "`, `") + "`)"
		}
		fmt.Fprintf(&b, "| %s | %s |\n", name, v.Does)
	}
	for _, k := range slices.Sorted(maps.Keys(gluetunIgnored)) {
		fmt.Fprintf(&b, "| `%s` | ignored: %s |\n", k, gluetunIgnored[k])
	}
	return b.String()
}
