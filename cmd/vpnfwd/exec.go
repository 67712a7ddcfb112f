package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/daemon"
	"github.com/vpnfwd/vpnfwd/provider/all"
	"github.com/vpnfwd/vpnfwd/session"
)

// runExec is `vpnfwd exec [up flags] -- CMD [ARGS...]`: CMD in a network
// namespace of its own whose only way out is the tunnel.
func runExec(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "exec", "[up flags] [--user USER] [--port-wait 60s] -- CMD [ARGS...]")
	flags := config.RegisterFlags(fs, all.Providers)
	userName := fs.String("user", "", "run CMD as `USER` (as root only; unprivileged, CMD runs as you)")
	portWait := fs.Duration("port-wait", time.Minute, "how long to wait for a forwarded port before giving up")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return &exitError{2, errors.New("no command: vpnfwd exec [flags] -- CMD [ARGS...]")}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg, err := loadUpConfig(flags, env)
	if err != nil {
		return err
	}
	if err := execConfig(cfg, set); err != nil {
		return &exitError{2, err}
	}
	var uid, gid *uint32
	if *userName != "" {
		if uid, gid, err = lookupUser(*userName); err != nil {
			return &exitError{2, err}
		}
	}
	log, err := newLogger(env.stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	sink, ports := daemon.PortSink()
	d, err := daemon.New(ctx, cfg, daemon.Options{Version: version, Log: log, Roots: env.roots, Exec: true, Session: session.Options{Sinks: []session.Sink{sink}}})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	status, err := d.Exec(ctx, ports, *portWait, argv, uid, gid)
	stopRun()
	if rerr := <-done; err == nil && rerr != nil && !errors.Is(rerr, context.Canceled) {
		err = rerr
	}
	if err != nil {
		return err
	}
	if status != 0 {
		return &exitError{status, nil}
	}
	return nil
}

// execConfig checks what exec does not take and sets its defaults: no
// kill switch or TUN in vpnfwd's own namespace (CMD's has no other way
// out), the DNS forwarder inside, proxies off unless asked for.
func execConfig(cfg *config.Config, set map[string]bool) error {
	switch {
	case cfg.KillSwitch.Enabled:
		return errors.New("exec needs no --killswitch: CMD's namespace has no way out but the tunnel (the kill switch would shut vpnfwd's own namespace)")
	case cfg.WireGuard.Tun != "":
		return errors.New("exec makes its own TUN inside CMD's namespace: drop --tun")
	case cfg.DNS.ResolvConf:
		return errors.New("exec points CMD's resolv.conf at the forwarder itself: drop --dns-resolv-conf")
	}
	cfg.DNS.Listen = "" // the forwarder listens inside
	if !set["socks5"] {
		cfg.Proxy.SOCKS5 = ""
	}
	if !set["http-proxy"] {
		cfg.Proxy.HTTP = ""
	}
	return nil
}

func lookupUser(name string) (uid, gid *uint32, err error) {
	if os.Geteuid() != 0 {
		return nil, nil, errors.New("--user needs root (unprivileged, CMD runs as you)")
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.ParseUint(name, 10, 32); numErr != nil {
			return nil, nil, fmt.Errorf("--user %s: no such user (give a user name or a numeric id)", name)
		}
		if u, err = user.LookupId(name); err != nil {
			// A numeric id with no passwd entry is a user all the same.
			id := uint32(0)
			fmt.Sscan(name, &id)
			return &id, &id, nil
		}
	}
	a, err1 := strconv.ParseUint(u.Uid, 10, 32)
	b, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, fmt.Errorf("--user %s: %w", name, err)
	}
	ua, gb := uint32(a), uint32(b)
	return &ua, &gb, nil
}
