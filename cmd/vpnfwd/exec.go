package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/netns"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/session"
)

// execDNS is where CMD's resolv.conf points: the forwarder's sockets,
// made inside CMD's namespace.
var execDNS = netip.MustParseAddrPort("127.0.0.1:53")

// runExec is `vpnfwd exec [up flags] -- CMD [ARGS...]`: CMD in a network
// namespace of its own whose only way out is the tunnel.
func runExec(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "exec", "[up flags] [--user USER] [--port-wait 60s] -- CMD [ARGS...]")
	flags := config.RegisterFlags(fs)
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
	sink, ports := portSink()
	d, err := startDaemon(ctx, cfg, daemonOptions{Log: log, Roots: env.roots, Exec: true, Session: session.Options{Sinks: []session.Sink{sink}}})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(runCtx) }()
	status, err := d.execCmd(ctx, ports, *portWait, argv, uid, gid)
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
		if u, err = user.LookupId(name); err != nil {
			return nil, nil, fmt.Errorf("--user %s: %w", name, err)
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

// execCmd waits for a port, starts CMD with it in its environment, passes
// a stop signal on, and returns CMD's exit status.
func (d *daemon) execCmd(ctx context.Context, ports <-chan provider.Lease, wait time.Duration, argv []string, uid, gid *uint32) (int, error) {
	var lease provider.Lease
	select {
	case lease = <-ports:
	case <-time.After(wait):
		return 0, fmt.Errorf("no forwarded port within %s (see the log above; --port-wait sets how long to wait): CMD not started", wait)
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-d.sandbox.Gone():
		return 0, errors.New("the namespace's agent ended before CMD started")
	}
	pub := lease.PublicPorts()
	var list []string
	for _, p := range pub {
		list = append(list, strconv.Itoa(int(p)))
	}
	env := cmdEnv(os.Environ())
	if len(pub) > 0 {
		env = append(env, "VPNFWD_PORT="+list[0], "VPNFWD_PORTS="+strings.Join(list, ","))
	}
	dir, _ := os.Getwd()
	pid, err := d.sandbox.Run(argv, env, dir, uid, gid)
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	d.log.Info("command started in the tunnel's namespace", "cmd", argv[0], "pid", pid, "port", strings.Join(list, ","))
	select {
	case st := <-d.sandbox.Exited():
		d.log.Info("command ended", "status", st)
		return st, nil
	case <-d.sandbox.Gone():
		return 0, errors.New("the namespace's agent ended")
	case <-ctx.Done():
	}
	d.sandbox.Signal(syscall.SIGTERM)
	select {
	case st := <-d.sandbox.Exited():
		d.log.Info("command ended", "status", st)
		return st, nil
	case <-time.After(10 * time.Second):
		d.log.Warn("command still running 10 s after SIGTERM: killing it")
		d.sandbox.Signal(syscall.SIGKILL)
		select {
		case st := <-d.sandbox.Exited():
			return st, nil
		case <-time.After(2 * time.Second):
			return 137, nil
		}
	}
}

// cmdEnv is CMD's environment: vpnfwd's own, without vpnfwd's settings
// (they may hold secrets) and the agent's marker.
func cmdEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if strings.HasPrefix(e, "VPNFWD_") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// openSandbox is exec's data plane: the TUN inside CMD's namespace, made
// by the agent, with the DNS forwarder's sockets beside it.
func (d *daemon) openSandbox() error {
	w := d.cfg.WireGuard
	s, err := netns.Start(netns.Config{Tun: "tun0", MTU: w.MTU, Addresses: w.Addresses(), Routes: allowedIPs(w.Peers), DNS: execDNS})
	if err != nil {
		return err
	}
	d.sandbox, d.plane = s, s
	d.dnsUDP, d.dnsTCP = s.DNSUDP, s.DNSTCP
	d.log.Info("exec: a network namespace with only lo and the tunnel is ready")
	return nil
}
