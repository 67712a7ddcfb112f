package main

import (
	"context"
	"fmt"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/daemon"
	"github.com/vpnfwd/vpnfwd/provider/all"
	"github.com/vpnfwd/vpnfwd/secret"
	"github.com/vpnfwd/vpnfwd/state"
)

func runUp(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "up", "[--config FILE] [--wg-config FILE] [--provider NAME] [--forward HOST[:PORT]] ...")
	flags := config.RegisterFlags(fs, all.Providers)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := loadUpConfig(flags, env)
	if err != nil {
		return err
	}
	log, err := newLogger(env.stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	d, err := daemon.New(ctx, cfg, daemon.Options{Version: version, Log: log, Roots: env.roots})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

func loadUpConfig(flags *config.Flags, env *cliEnv) (*config.Config, error) {
	cfg, err := flags.Load(env.lookupEnv)
	if err != nil {
		return nil, err
	}
	// The settings are read: secrets leave the environment, and no
	// child can read the one vpnfwd started with.
	if err := secret.Protect(); err != nil {
		return nil, fmt.Errorf("keeping secrets from child processes: %w", err)
	}
	if cfg.Provider.Name == "" {
		return nil, fmt.Errorf("no provider: give --provider NAME (one of %s; 'vpnfwd providers' says what each needs)", all.Providers.Names())
	}
	info, ok := all.Providers.Lookup(cfg.Provider.Name)
	if !ok {
		return nil, fmt.Errorf("--provider %s: unknown provider %q (one of %s)", cfg.Provider.Name, cfg.Provider.Name, all.Providers.Names())
	}
	if cfg.StateDir == "" {
		cfg.StateDir = state.DefaultPath()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if info.MakesTunnel {
		if cfg.WireGuard.Config != "" || len(cfg.WireGuard.Peers) > 0 {
			return nil, fmt.Errorf("provider %s makes its own WireGuard tunnel: drop --wg-config / [wireguard] peers (a private_key alone is used)", info.Name)
		}
		return cfg, nil
	}
	if err := cfg.LoadTunnel(); err != nil {
		return nil, err
	}
	return cfg, nil
}
