package daemon

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/publish"
)

// buildConsumers makes the configured publishers. iface is the tunnel's
// interface for the hooks' {{VPN_INTERFACE}} ("" in netstack mode). A
// port-lost hook is paired with a port hook (the first with the first, as
// gluetun has one of each) so that on a port change the old port's
// command finishes before the new port's runs.
func buildConsumers(cfg *config.Config, iface string, log *slog.Logger) ([]publish.Consumer, error) {
	var out []publish.Consumer
	var ups, downs []config.Publish
	for _, p := range cfg.Publish {
		if p.Type != "exec" {
			continue
		}
		if err := publish.CheckHook(p.Command, p.Shell); err != nil {
			flag := "--on-port (gluetun's VPN_PORT_FORWARDING_UP_COMMAND)"
			if p.On == "lost" {
				flag = "--on-port-lost (gluetun's VPN_PORT_FORWARDING_DOWN_COMMAND)"
			}
			return nil, fmt.Errorf("%s: %w", flag, err) // not the command: it may hold a password
		}
		if p.On == "lost" {
			downs = append(downs, p)
		} else {
			ups = append(ups, p)
		}
	}
	for i := range max(len(ups), len(downs)) {
		e := publish.Exec{Interface: iface, Log: log}
		if i < len(ups) {
			e.Command, e.Shell, e.Timeout = ups[i].Command, ups[i].Shell, time.Duration(ups[i].Timeout)
		}
		if i < len(downs) {
			e.Down, e.DownTimeout = downs[i].Command, time.Duration(downs[i].Timeout)
			if i >= len(ups) {
				e.Shell = downs[i].Shell
			}
		}
		out = append(out, e)
	}
	for _, p := range cfg.Publish {
		cc := publish.ClientConfig{
			URL: p.URL, Username: p.Username, Password: string(p.Password), PasswordFile: p.PasswordFile,
			APIKey: string(p.APIKey), APIKeyFile: p.APIKeyFile, CheckEvery: time.Duration(p.CheckInterval), Log: log,
		}
		switch p.Type {
		case "file":
			if err := publish.CheckFile(p.Path); err != nil {
				return nil, err
			}
			owner, err := p.FileOwner()
			if err != nil {
				return nil, err
			}
			out = append(out, &publish.File{Path: p.Path, Log: log, Owner: owner})
		case "exec": // above
		case "qbittorrent":
			opts := publish.QBittorrentOptions{MultiConnections: p.MultiConnections}
			if p.BindInterface {
				if iface == "" {
					return nil, fmt.Errorf("--qbittorrent-bind-interface binds qBittorrent to the tunnel's interface, which only tun mode (--tun NAME) and exec have; in netstack mode point qBittorrent at the proxy (--qbittorrent-proxy) instead")
				}
				opts.Interface = iface
			}
			if p.UseProxy {
				opts.SOCKS5 = cfg.Proxy.SOCKS5
			}
			out = append(out, publish.NewQBittorrent(cc, opts))
		case "transmission":
			out = append(out, publish.NewTransmission(cc))
		case "deluge":
			out = append(out, publish.NewDeluge(cc))
		default:
			return nil, fmt.Errorf("publish type %q is not supported", p.Type)
		}
	}
	return out, nil
}
