package main

import (
	"context"
	"flag"
	"io"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/daemon"
	"github.com/vpnfwd/vpnfwd/leakcheck"
	"github.com/vpnfwd/vpnfwd/provider/all"
	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/status"
)

// runLeakCheck is `vpnfwd leak-check`: against a running instance (its
// API) or, with --config/--wg-config, a vpnfwd it starts itself.
func runLeakCheck(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "leak-check", "[--api ADDR | --wg-config FILE --provider NAME | --config FILE] [flags]")
	addr, tok := apiFlags(fs, env)
	var o leakcheck.Options
	fs.StringVar(&o.IPURL, "ip-url", "https://api.ipify.org", "what's-my-IP `URL` (answers the caller's address as text)")
	fs.StringVar(&o.PortURL, "port-check-url", "https://portcheck.transmissionbt.com/{port}", "outside port checker `URL` with {port}, answering 1/0 or JSON, asked through the tunnel (\"\" skips the check)")
	fs.StringVar(&o.IPv6Target, "ipv6-target", "[2606:4700:4700::1111]:443", "an outside IPv6 `HOST:PORT` a direct connection is tried to")
	dns := fs.String("dns-server", "", "resolver(s) `ADDR[,ADDR]` a direct query is tried to (default: /etc/resolv.conf)")
	fs.BoolVar(&o.Simulate, "simulate-outage", false, "block the endpoint for --outage (needs the kill switch, in this namespace), check nothing gets out meanwhile, then that tunnel and port come back")
	fs.DurationVar(&o.Outage, "outage", 5*time.Second, "length of the simulated outage")
	watch := fs.Duration("watch", 0, "repeat every `INTERVAL` (a health check); 0 runs once")
	asJSON := fs.Bool("json", false, "print JSON")
	cfgFile := fs.String("config", "", "standalone: TOML config `FILE`")
	wgConf := fs.String("wg-config", "", "standalone: wg-quick `FILE`")
	prov := fs.String("provider", "", "standalone: provider `NAME`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	o.DNSServers = leakcheck.SystemDNS()
	if *dns != "" {
		o.DNSServers = nil
		for _, s := range strings.Split(*dns, ",") {
			if !strings.Contains(s, ":") || strings.HasSuffix(s, "]") {
				s += ":53"
			}
			o.DNSServers = append(o.DNSServers, strings.TrimSpace(s))
		}
	}
	var readStatus func(context.Context) (status.Status, error)
	if *cfgFile != "" || *wgConf != "" {
		stop, st, err := standalone(ctx, env, *cfgFile, *wgConf, *prov)
		if err != nil {
			return &exitError{2, err}
		}
		defer stop()
		readStatus = st
	} else {
		c, err := newAPIClient(*addr, *tok)
		if err != nil {
			return &exitError{2, err}
		}
		readStatus = func(ctx context.Context) (status.Status, error) {
			var st status.Status
			_, err := c.get(ctx, "/v1/status", &st)
			return st, err
		}
	}
	for {
		results := leakcheck.Run(ctx, readStatus, o)
		code := leakcheck.Print(env.stdout, results, *asJSON)
		if *watch == 0 {
			if code != 0 {
				return &exitError{code, nil}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*watch):
		}
	}
}

// standalone starts a vpnfwd in this process from a config.
func standalone(ctx context.Context, env *cliEnv, file, wgConf, prov string) (func(), func(context.Context) (status.Status, error), error) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := config.RegisterFlags(fs, all.Providers)
	var args []string
	for k, v := range map[string]string{"config": file, "wg-config": wgConf, "provider": prov} {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	args = append(args, "--api", "", "--socks5", "127.0.0.1:0", "--http-proxy", "")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	cfg, err := loadUpConfig(flags, env)
	if err != nil {
		return nil, nil, err
	}
	log, _ := newLogger(io.Discard, "error")
	sink, leases := daemon.PortSink()
	d, err := daemon.New(ctx, cfg, daemon.Options{Version: version, Log: log, Roots: env.roots, Session: session.Options{Sinks: []session.Sink{sink}}})
	if err != nil {
		return nil, nil, err
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(dctx); close(done) }()
	select {
	case <-leases:
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	stop := func() { cancel(); <-done }
	return stop, func(context.Context) (status.Status, error) { return d.Status(), nil }, nil
}
