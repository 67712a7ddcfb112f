package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vpnfwd/vpnfwd/api"
	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/daemon"
	"github.com/vpnfwd/vpnfwd/killswitch"
	"github.com/vpnfwd/vpnfwd/session"
)

type leakOpts struct {
	ipURL, portURL, ipv6Target string
	dnsServers                 []string
	outage                     time.Duration
	simulate                   bool
}

// runLeakCheck is `vpnfwd leak-check`: against a running instance (its
// API) or, with --config/--wg-config, a vpnfwd it starts itself.
func runLeakCheck(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "leak-check", "[--api ADDR | --wg-config FILE --provider NAME | --config FILE] [flags]")
	addr, tok := apiFlags(fs, env)
	var o leakOpts
	fs.StringVar(&o.ipURL, "ip-url", "https://api.ipify.org", "what's-my-IP `URL` (answers the caller's address as text)")
	fs.StringVar(&o.portURL, "port-check-url", "https://portcheck.transmissionbt.com/{port}", "outside port checker `URL` with {port}, answering 1/0 or JSON, asked through the tunnel (\"\" skips the check)")
	fs.StringVar(&o.ipv6Target, "ipv6-target", "[2606:4700:4700::1111]:443", "an outside IPv6 `HOST:PORT` a direct connection is tried to")
	dns := fs.String("dns-server", "", "resolver(s) `ADDR[,ADDR]` a direct query is tried to (default: /etc/resolv.conf)")
	fs.BoolVar(&o.simulate, "simulate-outage", false, "block the endpoint for --outage (needs the kill switch, in this namespace), check nothing gets out meanwhile, then that tunnel and port come back")
	fs.DurationVar(&o.outage, "outage", 5*time.Second, "length of the simulated outage")
	watch := fs.Duration("watch", 0, "repeat every `INTERVAL` (a health check); 0 runs once")
	asJSON := fs.Bool("json", false, "print JSON")
	cfgFile := fs.String("config", "", "standalone: TOML config `FILE`")
	wgConf := fs.String("wg-config", "", "standalone: wg-quick `FILE`")
	prov := fs.String("provider", "", "standalone: provider `NAME`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	o.dnsServers = systemDNS()
	if *dns != "" {
		o.dnsServers = nil
		for _, s := range strings.Split(*dns, ",") {
			if !strings.Contains(s, ":") || strings.HasSuffix(s, "]") {
				s += ":53"
			}
			o.dnsServers = append(o.dnsServers, strings.TrimSpace(s))
		}
	}
	var status func(context.Context) (api.Status, error)
	if *cfgFile != "" || *wgConf != "" {
		stop, st, err := standalone(ctx, env, *cfgFile, *wgConf, *prov)
		if err != nil {
			return &exitError{2, err}
		}
		defer stop()
		status = st
	} else {
		c, err := newAPIClient(*addr, *tok)
		if err != nil {
			return &exitError{2, err}
		}
		status = func(ctx context.Context) (api.Status, error) {
			var st api.Status
			_, err := c.get(ctx, "/v1/status", &st)
			return st, err
		}
	}
	for {
		results := leakCheck(ctx, status, o)
		code := printResults(env.stdout, results, *asJSON)
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
func standalone(ctx context.Context, env *cliEnv, file, wgConf, prov string) (func(), func(context.Context) (api.Status, error), error) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := config.RegisterFlags(fs)
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
	return stop, func(context.Context) (api.Status, error) { return d.Status(), nil }, nil
}

func leakCheck(ctx context.Context, status func(context.Context) (api.Status, error), o leakOpts) []checkResult {
	st, err := status(ctx)
	if err != nil {
		return []checkResult{errRes("status", "%v", err)}
	}
	if st.Tunnel.Mode == "exec" {
		return []checkResult{skip("mode", "vpnfwd exec: its command's network namespace holds only lo and the TUN %s, so nothing it sends can leave outside the tunnel; the checks here would test this namespace, which the command does not use", st.Tunnel.Device)}
	}
	checks := []func() checkResult{
		func() checkResult { r, _ := checkExitIP(ctx, st, o.ipURL); return r },
		func() checkResult { return checkDNS(ctx, st, o.dnsServers) },
		func() checkResult { return checkIPv6(ctx, st, o.ipv6Target) },
		func() checkResult { return checkKillSwitch(st) },
		func() checkResult { return checkPort(ctx, st, o.portURL, st.Port.Port) },
	}
	if o.simulate {
		checks = append(checks, func() checkResult { return simulateOutage(ctx, status, o) })
	}
	var res []checkResult
	for _, c := range checks {
		start := time.Now()
		r := c()
		r.Secs = time.Since(start).Round(time.Millisecond).Seconds()
		res = append(res, r)
	}
	return res
}

// checkKillSwitch reads the rules from the kernel and compares them with
// the tunnel's current endpoint.
func checkKillSwitch(st api.Status) checkResult {
	const name = "killswitch"
	info, err := killswitch.Status(st.KillSwitch.Table)
	if err != nil {
		return errRes(name, "%v", err)
	}
	if !info.Installed && st.Tunnel.Mode == "tun" {
		return leak(name, "not installed in this network namespace: what the routing does not send into %s (IPv6 without a tunnel address, the LAN, sockets bound to another interface) leaves directly (start vpnfwd with --killswitch)", st.Tunnel.Device)
	}
	if !info.Installed {
		return leak(name, "not installed in this network namespace: an app that ignores the proxy goes around the tunnel (start vpnfwd with --killswitch)")
	}
	if info.Endpoint.String() != st.Tunnel.Endpoint {
		return leak(name, "installed, but it lets %s out while the tunnel uses %s", info.Endpoint, st.Tunnel.Endpoint)
	}
	return pass(name, "installed (scope %s); only the WireGuard socket to %s may leave", info.Scope, info.Endpoint)
}

// simulateOutage closes the endpoint in the kill switch for o.outage,
// checks that nothing gets out directly meanwhile, then waits for the
// tunnel and the port to come back.
func simulateOutage(ctx context.Context, status func(context.Context) (api.Status, error), o leakOpts) checkResult {
	const name = "outage"
	st, err := status(ctx)
	if err != nil {
		return errRes(name, "%v", err)
	}
	info, err := killswitch.Status(st.KillSwitch.Table)
	if err != nil || !info.Installed || !info.Endpoint.IsValid() {
		return errRes(name, "needs vpnfwd's kill switch in this network namespace (and CAP_NET_ADMIN): %v", err)
	}
	ks := killswitch.Attach(st.KillSwitch.Table)
	if err := ks.CloseEndpoint(); err != nil {
		return errRes(name, "%v", err)
	}
	start := time.Now()
	direct, derr := fetch(ctx, directClient(), o.ipURL)
	dns := checkDNS(ctx, st, o.dnsServers)
	if rest := o.outage - time.Since(start); rest > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(rest):
		}
	}
	if err := ks.SetEndpoint(info.Endpoint); err != nil {
		return errRes(name, "restoring the endpoint rule: %v", err)
	}
	if derr == nil {
		return leak(name, "during the outage a direct request got out as %s", direct)
	}
	if dns.Result == "leak" {
		return leak(name, "during the outage: %s", dns.Detail)
	}
	st, _ = status(ctx)
	deadline := time.Now().Add(90 * time.Second)
	for {
		tc, _ := tunnelClient(st.Proxy.SOCKS5)
		if _, err := fetch(ctx, tc, o.ipURL); err == nil {
			st, err = status(ctx)
			if err == nil && st.Port.Port != 0 {
				return pass(name, "nothing got out during a %s outage; tunnel and port %d back %s after it", o.outage, st.Port.Port, time.Since(start.Add(o.outage)).Round(100*time.Millisecond))
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return checkResult{Check: name, Result: "fail", Detail: "nothing got out during the outage, but the tunnel or the port did not come back within 90 s"}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// printResults writes the table (or JSON) and returns the exit code: 0 all
// pass, 1 a leak or failure, 2 something could not be checked.
func printResults(w io.Writer, rs []checkResult, asJSON bool) int {
	code := 0
	for _, r := range rs {
		switch r.Result {
		case "leak", "fail":
			code = 1
		case "error":
			if code == 0 {
				code = 2
			}
		}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"time": time.Now().UTC().Format(time.RFC3339), "exit": code, "checks": rs})
		return code
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tTIME\tDETAIL")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%.1fs\t%s\n", r.Check, strings.ToUpper(r.Result), r.Secs, r.Detail)
	}
	tw.Flush()
	verdict := map[int]string{0: "no leak found", 1: "LEAK or failure found", 2: "some checks could not run"}[code]
	fmt.Fprintf(w, "leak-check: %s\n", verdict)
	return code
}
