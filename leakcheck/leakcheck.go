// Package leakcheck proves that vpnfwd leaks nothing where it runs: the
// exit address through the tunnel against a direct attempt, DNS, IPv6,
// the kill switch's rules, the forwarded port from outside, and (on
// request) a simulated outage with nothing getting out meanwhile. It reads
// vpnfwd's status (its control API, or a vpnfwd in the same process).
package leakcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vpnfwd/vpnfwd/killswitch"
	"github.com/vpnfwd/vpnfwd/status"
)

// Options say where to look.
type Options struct {
	IPURL      string   // what's-my-IP URL (answers the caller's address as text)
	PortURL    string   // outside port checker template ("" skips the check)
	IPv6Target string   // an outside IPv6 HOST:PORT a direct connection is tried to
	DNSServers []string // resolvers a direct query is tried to
	Outage     time.Duration
	Simulate   bool // simulate an outage (needs the kill switch here)
}

// Run runs the checks against the vpnfwd whose status it reads (its API,
// or one running in this process).
func Run(ctx context.Context, status func(context.Context) (status.Status, error), o Options) []Result {
	st, err := status(ctx)
	if err != nil {
		return []Result{errRes("status", "%v", err)}
	}
	if st.Tunnel.Mode == "exec" {
		return []Result{skip("mode", "vpnfwd exec: its command's network namespace holds only lo and the TUN %s, so nothing it sends can leave outside the tunnel; the checks here would test this namespace, which the command does not use", st.Tunnel.Device)}
	}
	checks := []func() Result{
		func() Result { r, _ := checkExitIP(ctx, st, o.IPURL); return r },
		func() Result { return checkDNS(ctx, st, o.DNSServers) },
		func() Result { return checkIPv6(ctx, st, o.IPv6Target) },
		func() Result { return checkKillSwitch(st) },
		func() Result { return checkPort(ctx, st, o.PortURL, st.Port.Port) },
	}
	if o.Simulate {
		checks = append(checks, func() Result { return simulateOutage(ctx, status, o) })
	}
	var res []Result
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
func checkKillSwitch(st status.Status) Result {
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

// simulateOutage closes the endpoint in the kill switch for o.Outage,
// checks that nothing gets out directly meanwhile, then waits for the
// tunnel and the port to come back.
func simulateOutage(ctx context.Context, status func(context.Context) (status.Status, error), o Options) Result {
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
	direct, derr := fetch(ctx, directClient(), o.IPURL)
	dns := checkDNS(ctx, st, o.DNSServers)
	if rest := o.Outage - time.Since(start); rest > 0 {
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
		if _, err := fetch(ctx, tc, o.IPURL); err == nil {
			st, err = status(ctx)
			if err == nil && st.Port.Port != 0 {
				return pass(name, "nothing got out during a %s outage; tunnel and port %d back %s after it", o.Outage, st.Port.Port, time.Since(start.Add(o.Outage)).Round(100*time.Millisecond))
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return Result{Check: name, Result: "fail", Detail: "nothing got out during the outage, but the tunnel or the port did not come back within 90 s"}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Print writes the table (or JSON) and returns the exit code: 0 all
// pass, 1 a leak or failure, 2 something could not be checked.
func Print(w io.Writer, rs []Result, asJSON bool) int {
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
