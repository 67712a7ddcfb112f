package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/netns"
	"github.com/vpnfwd/vpnfwd/provider/all"
	"github.com/vpnfwd/vpnfwd/publish"
	"github.com/vpnfwd/vpnfwd/tundev"
)

// runCheck is `vpnfwd check [up flags] [--exec]`: the configuration read
// as `up` (or `exec`) would read it, and this machine checked for what it
// needs, starting nothing. Exit 0 when all is well, 1 naming what is not.
func runCheck(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "check", "[up flags] [--exec]")
	flags := config.RegisterFlags(fs, all.Providers)
	forExec := fs.Bool("exec", false, "check for vpnfwd exec (its namespaces) rather than up")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected argument %q (check takes up's flags)", fs.Arg(0))}
	}
	w := env.stdout
	bad := 0
	say := func(err error, what, ok string) {
		if err != nil {
			bad++
			fmt.Fprintf(w, "FAIL  %s: %v\n", what, err)
			return
		}
		fmt.Fprintf(w, "ok    %s: %s\n", what, ok)
	}
	cfg, err := loadUpConfig(flags, env)
	if err != nil {
		say(err, "configuration", "")
		return &exitError{1, errors.New("the configuration is not usable (above)")}
	}
	plane := "netstack (no root needed)"
	switch {
	case *forExec:
		plane = "exec (a namespace of its own for the command)"
	case cfg.WireGuard.Tun != "":
		plane = "tun mode on " + cfg.WireGuard.Tun
	}
	servers := len(cfg.Servers)
	if servers == 0 {
		servers = 1
	}
	say(nil, "configuration", fmt.Sprintf("provider %s, %d server(s), %s", cfg.Provider.Name, servers, plane))
	for _, warn := range cfg.Warnings {
		fmt.Fprintf(w, "warn  %s\n", warn)
	}
	for _, note := range cfg.Notes {
		fmt.Fprintf(w, "note  %s\n", note)
	}
	if cfg.WireGuard.Tun != "" && !*forExec {
		say(tundev.Check(), "tun mode", "/dev/net/tun and CAP_NET_ADMIN")
	}
	if cfg.KillSwitch.Enabled {
		say(netAdmin("the kill switch"), "kill switch", "CAP_NET_ADMIN for nftables")
	}
	if *forExec {
		say(netns.Check(), "exec", "user and network namespaces can be made")
		if os.Geteuid() != 0 {
			say(tundev.CheckDevice(), "exec's TUN", "/dev/net/tun is open to this user")
		}
	}
	for _, p := range cfg.Publish {
		if p.Type == "exec" {
			name := "hook --on-port"
			if p.On == "lost" {
				name = "hook --on-port-lost"
			}
			say(publish.CheckHook(p.Command, p.Shell), name, "its program is there")
		}
	}
	if bad > 0 {
		return &exitError{1, fmt.Errorf("%d problem(s) found (above)", bad)}
	}
	fmt.Fprintln(w, "check: all good")
	return nil
}

// netAdmin says whether this process holds CAP_NET_ADMIN.
func netAdmin(what string) error {
	has, err := tundev.HasNetAdmin()
	if err != nil {
		return err
	}
	if !has {
		return fmt.Errorf("%s needs root or CAP_NET_ADMIN (in a container: --cap-add NET_ADMIN); uid %d has neither", what, os.Getuid())
	}
	return nil
}
