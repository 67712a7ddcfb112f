package daemon

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/publish"
)

// buildConsumers makes the configured publishers.
func buildConsumers(cfg *config.Config, log *slog.Logger) ([]publish.Consumer, error) {
	var out []publish.Consumer
	for _, p := range cfg.Publish {
		cc := publish.ClientConfig{
			URL: p.URL, Username: p.Username, Password: string(p.Password), PasswordFile: p.PasswordFile,
			APIKey: string(p.APIKey), APIKeyFile: p.APIKeyFile, CheckEvery: time.Duration(p.CheckInterval), Log: log,
		}
		switch p.Type {
		case "file":
			out = append(out, &publish.File{Path: p.Path, Log: log})
		case "exec":
			if !p.Shell {
				if _, err := publish.SplitWords(p.Command); err != nil {
					return nil, fmt.Errorf("--on-port: %w", err)
				}
			}
			out = append(out, publish.Exec{Command: p.Command, Shell: p.Shell, Timeout: time.Duration(p.Timeout), OnLost: p.On == "lost"})
		case "qbittorrent":
			opts := publish.QBittorrentOptions{MultiConnections: p.MultiConnections}
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
