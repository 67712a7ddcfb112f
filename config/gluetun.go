package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/secret"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// gluetun's environment, read as gluetun reads it, so that a compose file
// written for gluetun (qmcgaw/gluetun) runs vpnfwd by changing the image.
// The names and defaults come from gluetun's documentation (the wiki's
// setup/options pages) and its source (internal/configuration/sources/env).
// What vpnfwd runs is gluetun's setup: the kernel data plane on a TUN named
// VPN_INTERFACE (wg0), the kill switch (FIREWALL=on) letting the
// container's own networks through (so published ports keep working), a DNS
// forwarder on 127.0.0.1:53 in /etc/resolv.conf, the port file, the up and
// down commands and the control server on :8000.

// gluetunProviders maps VPN_SERVICE_PROVIDER to vpnfwd's providers.
var gluetunProviders = map[string]string{
	"protonvpn":               "protonvpn",
	"private internet access": "pia",
	"privatevpn":              "privatevpn",
	"perfect privacy":         "perfectprivacy",
	"airvpn":                  "airvpn",
	"windscribe":              "windscribe",
	"torguard":                "torguard",
	"custom":                  "natpmp",
}

// gluetunIgnored are gluetun settings vpnfwd has no use for, with why.
var gluetunIgnored = map[string]string{
	"DOT":                         "DNS goes through the tunnel already",
	"DOT_PROVIDERS":               "DNS goes through the tunnel already",
	"DNS_KEEP_NAMESERVER":         "vpnfwd's forwarder answers in /etc/resolv.conf",
	"BLOCK_MALICIOUS":             "no DNS block lists",
	"BLOCK_ADS":                   "no DNS block lists",
	"BLOCK_SURVEILLANCE":          "no DNS block lists",
	"UNBLOCK":                     "no DNS block lists",
	"UPDATER_PERIOD":              "no server-list updater",
	"PUBLICIP_PERIOD":             "the public IP is the provider's answer",
	"PUBLICIP_API":                "the public IP is the provider's answer",
	"PUBLICIP_FILE":               "the public IP is the provider's answer",
	"HEALTH_TARGET_ADDRESS":       "the health check is vpnfwd's own (GET /healthz)",
	"HEALTH_SERVER_ADDRESS":       "the health check is vpnfwd's own (GET /healthz on the control server)",
	"HEALTH_VPN_DURATION_INITIAL": "vpnfwd recovers on its own timings",
	"VERSION_INFORMATION":         "no update check",
	"TZ":                          "read by Go itself",
	"WIREGUARD_IMPLEMENTATION":    "vpnfwd is userspace WireGuard (wireguard-go) on a kernel TUN",
	"FIREWALL_VPN_INPUT_PORTS":    "everything arriving through the tunnel is let in",
	"HTTPPROXY_LOG":               "the proxy logs refusals only",
	"HTTPPROXY_STEALTH":           "the proxy adds no headers anyway",
	"LOG_LEVEL":                   "use VPNFWD_LOG_LEVEL",
	"HTTP_CONTROL_SERVER_LOG":     "vpnfwd logs the control server's refusals, not every request",
	"HEALTH_TARGET_ADDRESSES":     "the health check is vpnfwd's own: the tunnel and the port (GET /healthz)",
	"HEALTH_ICMP_TARGET_IPS":      "the health check is vpnfwd's own: the tunnel and the port (GET /healthz)",
	"HEALTH_RESTART_VPN":          "vpnfwd recovers by itself (new handshake, next server)",
	"DNS_SERVER":                  "vpnfwd's forwarder on 127.0.0.1:53 always answers, through the tunnel",
	"DNS_UPSTREAM_RESOLVERS":      "DNS goes to the tunnel's own DNS server",
	"DNS_UPSTREAM_RESOLVER_TYPE":  "DNS goes to the tunnel's own DNS server",
}

// gluetunSeen says whether the environment is gluetun's.
func gluetunSeen(lookup func(string) (string, bool)) bool {
	for _, k := range []string{"VPN_SERVICE_PROVIDER", "VPN_TYPE", "WIREGUARD_PRIVATE_KEY", "VPN_PORT_FORWARDING"} {
		if _, ok := lookup(k); ok {
			return true
		}
	}
	return false
}

// applyGluetun reads gluetun's variables into cfg, before vpnfwd's own
// (VPNFWD_*, then flags), which override them. It records in cfg.Notes
// what it mapped and what it ignored; a variable it cannot honour is an
// error that says what to give instead. Secrets are named, never shown.
func applyGluetun(cfg *Config, rawLookup func(string) (string, bool), set func(flag, value string) error) error {
	var older []string
	lookup := gluetunLookup(rawLookup, &older)
	get := func(k string) string { v, _ := lookup(k); return v }
	var mapped, ignored []string
	note := func(k, what string) {
		if _, ok := lookup(k); ok {
			mapped = append(mapped, k+" → "+what)
		}
	}
	on := func(k string, dflt bool) (bool, error) { return gluetunBool(k, get(k), dflt) }

	// The provider.
	name := strings.ToLower(get("VPN_SERVICE_PROVIDER"))
	if pf := strings.ToLower(get("VPN_PORT_FORWARDING_PROVIDER")); pf != "" {
		name = pf
	}
	prov, ok := gluetunProviders[name]
	if !ok && name != "" {
		if _, own := cfg.Providers.Lookup(name); own {
			prov, ok = name, true
		}
	}
	if !ok {
		known := make([]string, 0, len(gluetunProviders))
		for k := range gluetunProviders {
			known = append(known, k)
		}
		slices.Sort(known)
		if name == "" {
			return fmt.Errorf("gluetun environment: VPN_SERVICE_PROVIDER is not set; vpnfwd forwards ports for: %s", strings.Join(known, ", "))
		}
		return fmt.Errorf("gluetun environment: VPN_SERVICE_PROVIDER=%q: vpnfwd has no port forwarding for it; it has: %s (or VPN_SERVICE_PROVIDER=custom for any NAT-PMP gateway)", name, strings.Join(known, ", "))
	}
	cfg.Provider.Name = prov
	note("VPN_SERVICE_PROVIDER", "provider "+prov)
	note("VPN_PORT_FORWARDING_PROVIDER", "provider "+prov)
	if pfOn, err := on("VPN_PORT_FORWARDING", false); err != nil {
		return err
	} else if !pfOn {
		mapped = append(mapped, "VPN_PORT_FORWARDING off → on anyway (forwarding a port is what vpnfwd is for)")
	} else {
		note("VPN_PORT_FORWARDING", "on")
	}

	if n := get("VPN_PORT_FORWARDING_PORTS_COUNT"); n != "" {
		// gluetun's bound (settings/portforward.go): Proton up to 4, any
		// other provider 1.
		most := uint64(1)
		if prov == "protonvpn" {
			most = 4
		}
		if c, err := strconv.ParseUint(n, 10, 16); err != nil || c == 0 || c > most {
			return fmt.Errorf("VPN_PORT_FORWARDING_PORTS_COUNT=%q: want 1 to %d for %s (gluetun's bound)", n, most, prov)
		}
		cfg.Provider.Set("ports_count", n)
		note("VPN_PORT_FORWARDING_PORTS_COUNT", "ports_count "+n)
	}

	// The tunnel.
	typ := strings.ToLower(get("VPN_TYPE"))
	_, hasKey := lookup("WIREGUARD_PRIVATE_KEY")
	_, hasFile := lookup("VPNFWD_WG_CONFIG")
	switch {
	case prov == "pia":
		// gluetun runs PIA over OpenVPN; vpnfwd makes PIA's WireGuard
		// tunnel itself with the same account.
		if typ == "openvpn" {
			mapped = append(mapped, "VPN_TYPE=openvpn → PIA's WireGuard with the same account (vpnfwd registers the key itself)")
		}
	case hasFile:
		mapped = append(mapped, "VPNFWD_WG_CONFIG → the tunnel (WIREGUARD_* not needed)")
	case typ == "openvpn" || (typ == "" && !hasKey):
		return errors.New("gluetun environment: vpnfwd runs WireGuard only: set VPN_TYPE=wireguard with WIREGUARD_PRIVATE_KEY and WIREGUARD_ADDRESSES (from your provider's WireGuard config), or mount the wg-quick file and set VPNFWD_WG_CONFIG=/path/to/wg0.conf")
	case typ != "" && typ != "wireguard":
		return fmt.Errorf("gluetun environment: VPN_TYPE=%q: want wireguard", typ)
	}
	if prov != "pia" && hasKey && !hasFile {
		if err := gluetunWireGuard(cfg, get, prov); err != nil {
			return err
		}
		mapped = append(mapped, "WIREGUARD_* → [wireguard] (private key, addresses, peer)")
	}
	if prov == "pia" {
		// gluetun's order (settings/portforward.go): the port forwarding
		// account, else OpenVPN's (whose older names are USER and PASSWORD).
		user, pass := get("VPN_PORT_FORWARDING_USERNAME"), get("VPN_PORT_FORWARDING_PASSWORD")
		if user == "" {
			user = get("OPENVPN_USER")
		}
		if pass == "" {
			pass = get("OPENVPN_PASSWORD")
		}
		if user != "" {
			cfg.Provider.Set("username", user)
			mapped = append(mapped, "the PIA account's name → username")
		}
		if pass != "" {
			cfg.Provider.Set("password", secret.String(pass))
			mapped = append(mapped, "the PIA account's password → password")
		}
		if r := get("SERVER_REGIONS"); r != "" {
			region, _, _ := strings.Cut(r, ",")
			cfg.Provider.Set("region", strings.TrimSpace(region))
			mapped = append(mapped, "SERVER_REGIONS → region "+strings.TrimSpace(region))
		}
	}
	// gluetun names the interface wg0 under WireGuard (settings/wireguard.go)
	// and tun0 under OpenVPN (PIA's setting, whose tunnel vpnfwd makes).
	iface := get("VPN_INTERFACE")
	switch {
	case iface != "":
	case typ == "openvpn" || (typ == "" && prov == "pia"): // gluetun's image sets VPN_TYPE=openvpn
		iface = "tun0"
	default:
		iface = "wg0"
	}
	cfg.WireGuard.Tun = iface
	mapped = append(mapped, "tun mode on "+iface+" (VPN_INTERFACE)")

	// The firewall: gluetun's kill switch lets the container's own networks
	// through (a port published with `ports:` keeps working).
	fw, err := on("FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT", true)
	if err != nil {
		return err
	}
	cfg.KillSwitch.Enabled = fw
	if fw {
		cfg.KillSwitch.AllowLocalSubnets = true
		mapped = append(mapped, "FIREWALL on → kill switch, the container's own subnets allowed")
	}
	if v := get("FIREWALL_OUTBOUND_SUBNETS"); v != "" {
		cfg.KillSwitch.AllowLAN = append(cfg.KillSwitch.AllowLAN, splitList(v)...)
		note("FIREWALL_OUTBOUND_SUBNETS", "allow_lan")
	}
	if v := get("FIREWALL_INPUT_PORTS"); v != "" {
		mapped = append(mapped, "FIREWALL_INPUT_PORTS → nothing to do: the container's own subnets are let in")
	}

	// DNS: gluetun's resolver on 127.0.0.1, in /etc/resolv.conf.
	if a := get("DNS_ADDRESS"); a != "" && a != "127.0.0.1" {
		ignored = append(ignored, "DNS_ADDRESS="+a+" (vpnfwd's forwarder on 127.0.0.1:53 asks the tunnel's DNS server)")
	}
	cfg.DNS.Listen, cfg.DNS.ResolvConf = "127.0.0.1:53", true

	// The port: file, commands, the port the service listens on.
	file := get("VPN_PORT_FORWARDING_STATUS_FILE")
	if file == "" {
		file = "/tmp/gluetun/forwarded_port"
	}
	if err := set("port-file", file); err != nil {
		return err
	}
	mapped = append(mapped, "port file "+file+" (VPN_PORT_FORWARDING_STATUS_FILE)")
	// gluetun gives the port file to PUID:PGID (1000:1000 by default)
	// after each write; as root vpnfwd does too (as another user it
	// cannot, and the file is that user's).
	if os.Geteuid() == 0 {
		uid, gid := get("PUID"), get("PGID")
		if uid == "" {
			uid = "1000"
		}
		if gid == "" {
			gid = "1000"
		}
		cfg.Publish[len(cfg.Publish)-1].Owner = uid + ":" + gid
		mapped = append(mapped, "the port file given to "+uid+":"+gid+" (PUID, PGID)")
	}
	if v := get("VPN_PORT_FORWARDING_UP_COMMAND"); v != "" {
		if err := set("on-port", v); err != nil {
			return fmt.Errorf("VPN_PORT_FORWARDING_UP_COMMAND: %w", err)
		}
		note("VPN_PORT_FORWARDING_UP_COMMAND", "on-port")
	}
	if v := get("VPN_PORT_FORWARDING_DOWN_COMMAND"); v != "" {
		if err := set("on-port-lost", v); err != nil {
			return fmt.Errorf("VPN_PORT_FORWARDING_DOWN_COMMAND: %w", err)
		}
		note("VPN_PORT_FORWARDING_DOWN_COMMAND", "on-port-lost")
	}
	if list := get("VPN_PORT_FORWARDING_LISTENING_PORTS"); list != "" && list != "0" {
		ports := splitList(list)
		if len(ports) != 1 {
			return fmt.Errorf("VPN_PORT_FORWARDING_LISTENING_PORTS=%q: vpnfwd redirects the forwarded port to one port; give one, or leave it out and let the service follow the port (the up command, or a publisher)", list)
		}
		p, err := strconv.ParseUint(ports[0], 10, 16)
		if err != nil || p == 0 {
			return fmt.Errorf("VPN_PORT_FORWARDING_LISTENING_PORTS=%q: want a port from 1 to 65535", list)
		}
		cfg.Forward.Target = "0.0.0.0:" + ports[0]
		mapped = append(mapped, "VPN_PORT_FORWARDING_LISTENING_PORTS → forward 0.0.0.0:"+ports[0]+" (redirected in the kernel)")
	}

	// The control server: gluetun's :8000 and its auth file.
	addr := get("HTTP_CONTROL_SERVER_ADDRESS")
	authFile := get("HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH")
	if authFile == "" {
		if _, err := os.Stat("/gluetun/auth/config.toml"); err == nil {
			authFile = "/gluetun/auth/config.toml"
		}
	}
	defaultRole := get("HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE")
	cfg.API.AuthConfig, cfg.API.AuthDefaultRole = authFile, defaultRole
	// Read as gluetun reads them: {} (its default) is no default role,
	// and a route no role names answers 401, never open. With neither
	// set, every route answers 401, as in gluetun's current release;
	// vpnfwd's own /healthz (the image's health check) stays open.
	cfg.API.GluetunAuth = true
	if authFile == "" && defaultRole == "" {
		cfg.Notes = append(cfg.Notes, "gluetun's control server: no auth file and no default role, so every route answers 401, as gluetun's does; "+
			"give sidecars a role in /gluetun/auth/config.toml (HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH), or open the port routes to the pod with "+
			`HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE='{"auth":"none"}'`)
	}
	note("HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH", "api.auth_config")
	note("HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE", "api.auth_default_role (routes no role names answer 401 unless it gives an auth)")
	switch {
	case addr != "":
		cfg.API.Listen = gluetunListen(addr)
		note("HTTP_CONTROL_SERVER_ADDRESS", "api "+cfg.API.Listen)
	default:
		// Every route but /healthz needs a role, as in gluetun.
		cfg.API.Listen = "0.0.0.0:8000"
		mapped = append(mapped, "control server on :8000 (gluetun's default)")
	}

	// The public IP: gluetun asks ipinfo.io through the tunnel
	// (PUBLICIP_API, default ipinfo; off with PUBLICIP_ENABLED=off or
	// PUBLICIP_PERIOD=0). vpnfwd asks only when the provider does not say.
	pubOn, err := on("PUBLICIP_ENABLED", true)
	if err != nil {
		return err
	}
	if get("PUBLICIP_PERIOD") == "0" {
		pubOn = false
	}
	if pubOn {
		u := "https://ipinfo.io/json"
		switch api := strings.ToLower(get("PUBLICIP_API")); {
		case strings.HasPrefix(api, "http://") || strings.HasPrefix(api, "https://"):
			u = get("PUBLICIP_API")
		case api != "" && api != "ipinfo":
			ignored = append(ignored, "PUBLICIP_API="+api+" (vpnfwd reads ipinfo.io's answer, or give a URL)")
		}
		if tok, _ := lookup("PUBLICIP_API_TOKEN"); tok != "" && u == "https://ipinfo.io/json" {
			u += "?token=" + tok
		}
		cfg.PublicIPURL = u
		mapped = append(mapped, "public IP from ipinfo.io through the tunnel where the provider does not give it (PUBLICIP_*)")
	}

	// Proxies: gluetun's HTTP proxy when asked for; shadowsocks is not.
	cfg.Proxy.SOCKS5, cfg.Proxy.HTTP = "", ""
	if hp, err := on("HTTPPROXY", false); err != nil {
		return err
	} else if hp {
		l := get("HTTPPROXY_LISTENING_ADDRESS")
		if l == "" {
			l = ":8888"
		}
		cfg.Proxy.HTTP = gluetunListen(l)
		if u := get("HTTPPROXY_USER"); u != "" {
			cfg.Proxy.Username = u
		}
		if p, _ := lookup("HTTPPROXY_PASSWORD"); p != "" {
			cfg.Proxy.Password = secret.String(p)
		}
		if !strings.HasPrefix(cfg.Proxy.HTTP, "127.") && (cfg.Proxy.Username == "" || cfg.Proxy.Password == "") {
			return fmt.Errorf("gluetun environment: HTTPPROXY=on listens on %s, reachable from other hosts: set HTTPPROXY_USER and HTTPPROXY_PASSWORD so it needs a login (vpnfwd runs no open proxy), or HTTPPROXY_LISTENING_ADDRESS=127.0.0.1:8888", cfg.Proxy.HTTP)
		}
		mapped = append(mapped, "HTTPPROXY on → HTTP proxy on "+cfg.Proxy.HTTP)
	}
	if ss, err := on("SHADOWSOCKS", false); err != nil {
		return err
	} else if ss {
		return errors.New("gluetun environment: SHADOWSOCKS=on: vpnfwd has no Shadowsocks server; use its HTTP proxy (HTTPPROXY=on) or SOCKS5 proxy (VPNFWD_SOCKS5=0.0.0.0:1080 with VPNFWD_PROXY_USERNAME and VPNFWD_PROXY_PASSWORD_FILE)")
	}

	for _, k := range slices.Sorted(maps.Keys(gluetunIgnored)) {
		if _, ok := lookup(k); ok {
			why := gluetunIgnored[k]
			if why == "" {
				ignored = append(ignored, k)
			} else {
				ignored = append(ignored, k+" ("+why+")")
			}
		}
	}
	cfg.Notes = append(cfg.Notes, "gluetun environment read: "+strings.Join(mapped, "; "))
	if len(older) > 0 {
		cfg.Notes = append(cfg.Notes, "gluetun's older names read (they still work; the newer is shown): "+strings.Join(older, "; "))
	}
	if len(ignored) > 0 {
		cfg.Notes = append(cfg.Notes, "gluetun settings ignored: "+strings.Join(ignored, "; "))
	}
	return nil
}

// gluetunWireGuard fills [wireguard] from WIREGUARD_* (and the older
// VPN_ENDPOINT_*). Without an endpoint and the server's key there is no
// server: gluetun would pick one from its server list, which vpnfwd has
// not, and the error says what to give.
func gluetunWireGuard(cfg *Config, get func(string) string, prov string) error {
	w := &cfg.WireGuard
	if err := w.PrivateKey.UnmarshalText([]byte(get("WIREGUARD_PRIVATE_KEY"))); err != nil {
		return fmt.Errorf("WIREGUARD_PRIVATE_KEY: %w", err)
	}
	ip := get("WIREGUARD_ENDPOINT_IP")
	if ip == "" {
		ip = get("VPN_ENDPOINT_IP")
	}
	port := get("WIREGUARD_ENDPOINT_PORT")
	if port == "" {
		port = get("VPN_ENDPOINT_PORT")
	}
	if port == "" {
		port = "51820"
	}
	pub := get("WIREGUARD_PUBLIC_KEY")
	fromList := ip == "" || pub == ""
	if fromList {
		// No server given: gluetun picks one from its server list, in
		// the user's volume; so does vpnfwd (LoadTunnel reads it).
		if err := gluetunServerList(cfg, get, prov); err != nil {
			return err
		}
	}
	addrs := get("WIREGUARD_ADDRESSES")
	if addrs == "" && prov == "protonvpn" {
		addrs = "10.2.0.2/32" // every Proton WireGuard config's Address
	}
	if addrs == "" {
		return errors.New("gluetun environment: WIREGUARD_ADDRESSES is not set: give the Address line of your provider's WireGuard config (e.g. 10.2.0.2/32)")
	}
	for _, a := range splitList(addrs) {
		p, err := tunnel.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("WIREGUARD_ADDRESSES: %w", err)
		}
		w.Address = append(w.Address, p)
	}
	if fromList {
		return gluetunDNS(w, prov)
	}
	var peer tunnel.Peer
	if err := peer.PublicKey.UnmarshalText([]byte(pub)); err != nil {
		return fmt.Errorf("WIREGUARD_PUBLIC_KEY: %w", err)
	}
	if psk := get("WIREGUARD_PRESHARED_KEY"); psk != "" {
		if err := peer.PresharedKey.UnmarshalText([]byte(psk)); err != nil {
			return fmt.Errorf("WIREGUARD_PRESHARED_KEY: %w", err)
		}
	}
	if err := peer.Endpoint.UnmarshalText([]byte(net.JoinHostPort(ip, port))); err != nil {
		return fmt.Errorf("WIREGUARD_ENDPOINT_IP/PORT: %w", err)
	}
	allowed := get("WIREGUARD_ALLOWED_IPS")
	if allowed == "" {
		allowed = "0.0.0.0/0,::/0"
	}
	for _, a := range splitList(allowed) {
		p, err := tunnel.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("WIREGUARD_ALLOWED_IPS: %w", err)
		}
		peer.AllowedIPs = append(peer.AllowedIPs, p)
	}
	if ka := get("WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL"); ka != "" {
		d, err := time.ParseDuration(ka)
		if err != nil {
			return fmt.Errorf("WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL=%q: want a duration such as 25s", ka)
		}
		peer.PersistentKeepalive = int(d / time.Second)
	}
	if m := get("WIREGUARD_MTU"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 576 || n > 9000 {
			return fmt.Errorf("WIREGUARD_MTU=%q: want a number from 576 to 9000", m)
		}
		w.MTU = n
	}
	w.Peers = []tunnel.Peer{peer}
	return gluetunDNS(w, prov)
}

// gluetunDNS sets the DNS server vpnfwd's forwarder asks, through the
// tunnel: the provider's own where it is known, else Cloudflare's
// (gluetun's default upstream).
func gluetunDNS(w *tunnel.WireGuard, prov string) error {
	dns := "1.1.1.1"
	if prov == "protonvpn" {
		dns = "10.2.0.1"
	}
	var a tunnel.Addr
	if err := a.UnmarshalText([]byte(dns)); err != nil {
		return err
	}
	w.DNS = []tunnel.Addr{a}
	return nil
}

// gluetunServerList sets [servers] from gluetun's server selection: its
// list where its storage settings put it (STORAGE_FILEPATH, else
// /gluetun/servers.json), SERVER_* and the *_ONLY flags (PORT_FORWARD_ONLY
// on by default for Proton and PIA, as gluetun with port forwarding on).
func gluetunServerList(cfg *Config, get func(string) string, prov string) error {
	sl := &cfg.ServerList
	sl.List = get("STORAGE_FILEPATH")
	if sl.List == "" {
		sl.List = "/gluetun/servers.json"
	}
	sl.Countries, sl.Regions, sl.Cities = splitList(get("SERVER_COUNTRIES")), splitList(get("SERVER_REGIONS")), splitList(get("SERVER_CITIES"))
	sl.Hostnames, sl.Names = splitList(get("SERVER_HOSTNAMES")), splitList(get("SERVER_NAMES"))
	flags := []struct {
		k string
		b *bool
	}{{"FREE_ONLY", &sl.FreeOnly}, {"SECURE_CORE_ONLY", &sl.SecureCoreOnly}, {"TOR_ONLY", &sl.TorOnly}, {"STREAM_ONLY", &sl.StreamOnly}}
	for _, f := range flags {
		v, err := gluetunBool(f.k, get(f.k), false)
		if err != nil {
			return err
		}
		*f.b = v
	}
	if v := get("PORT_FORWARD_ONLY"); v != "" {
		b, err := gluetunBool("PORT_FORWARD_ONLY", v, true)
		if err != nil {
			return err
		}
		sl.PortForwardOnly = &b
	}
	if p := get("WIREGUARD_ENDPOINT_PORT"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("WIREGUARD_ENDPOINT_PORT=%q: want a port from 1 to 65535", p)
		}
		sl.Port = uint16(n)
	}
	if a := get("WIREGUARD_ALLOWED_IPS"); a != "" {
		for _, s := range splitList(a) {
			p, err := tunnel.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("WIREGUARD_ALLOWED_IPS: %w", err)
			}
			sl.AllowedIPs = append(sl.AllowedIPs, p)
		}
	}
	cfg.Notes = append(cfg.Notes, "gluetun environment: no server given (WIREGUARD_ENDPOINT_IP, WIREGUARD_PUBLIC_KEY): picking one from gluetun's server list "+sl.List+" ("+sl.filter(prov).String()+")")
	return nil
}

// gluetunListen turns gluetun's ":8000" into vpnfwd's "0.0.0.0:8000".
func gluetunListen(a string) string {
	if strings.HasPrefix(a, ":") {
		return "0.0.0.0" + a
	}
	return a
}
