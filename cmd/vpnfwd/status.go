package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vpnfwd/vpnfwd/status"
)

func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "status", "[--api ADDR] [--json]")
	addr, tok := apiFlags(fs, env)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := newAPIClient(*addr, *tok)
	if err != nil {
		return err
	}
	var st status.Status
	if _, err := c.get(ctx, "/v1/status", &st); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(env.stdout, st)
	return nil
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s ago", time.Since(t).Round(time.Second))
}

func printStatus(w io.Writer, st status.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("state", "%s (since %s)", st.State, st.Since.Format(time.RFC3339))
	row("tunnel", "%s, endpoint %s, address %s", st.Tunnel.State, st.Tunnel.Endpoint, strings.Join(st.Tunnel.Addresses, ","))
	if st.Tunnel.Server != "" {
		row("server", "%s", st.Tunnel.Server)
	}
	row("handshake", "%s", ago(st.Tunnel.LastHandshake))
	row("traffic", "rx %d B, tx %d B", st.Tunnel.RxBytes, st.Tunnel.TxBytes)
	if st.Port.Port != 0 {
		ip := st.Port.PublicIP
		if ip == "" {
			ip = "(public IP unknown)"
		}
		ports := make([]string, len(st.Port.Ports))
		for i, p := range st.Port.Ports {
			ports[i] = fmt.Sprint(p)
		}
		row("port", "%s on %s via %s", strings.Join(ports, ", "), ip, st.Port.Provider)
		if !st.Port.Expires.IsZero() {
			row("lease", "renewed %s, expires in %s", ago(st.Port.LastRenewal), time.Until(st.Port.Expires).Round(time.Second))
		}
		switch {
		case st.Port.Dead != "":
			row("health", "DEAD since %s: %s (recovering)", ago(st.Port.DeadSince), st.Port.Dead)
		case st.Port.Verified.IsZero():
			row("health", "held, not verified yet")
		default:
			row("health", "verified %s (%s)", ago(st.Port.Verified), st.Port.VerifiedBy)
		}
		if st.Port.Outside != "" {
			row("outside", "%s (%s)", st.Port.Outside, ago(st.Port.OutsideAt))
		}
	} else if st.Port.Error != "" {
		row("port", "none (%s): %s", st.Port.Provider, st.Port.Error)
	} else {
		row("port", "none yet (%s)", st.Port.Provider)
	}
	f := st.Forward
	row("forward", "to %s %s: %d TCP open (%d total, %d refused), %d UDP peers, in %d B, out %d B",
		f.Target, strings.Join(f.Protocols, "+"), f.TCPOpen, f.TCPTotal, f.TCPRefused, f.UDPFlows, f.BytesIn, f.BytesOut)
	for _, m := range st.AppMappings {
		row("app", "%s port %d -> public %d, asked by %s (%s), until %s", m.Protocol, m.InternalPort, m.PublicPort, m.Client, m.Via, m.Expires.Format(time.TimeOnly))
	}
	for _, l := range st.LocalForwards {
		row("local", "%s %s -> %s through the tunnel: %d open (%d total, %d failed), out %d B, in %d B",
			l.Protocol, l.Listen, l.To, l.Open, l.Total, l.Failed, l.BytesOut, l.BytesIn)
	}
	row("proxy", "socks5 %s, http %s", orOff(st.Proxy.SOCKS5), orOff(st.Proxy.HTTP))
	if st.KillSwitch.Enabled {
		row("killswitch", "on (%s)%s", st.KillSwitch.Scope, map[bool]string{true: ", lockdown"}[st.KillSwitch.Lockdown])
	} else {
		row("killswitch", "off")
	}
	for _, p := range st.Publish {
		res := "ok"
		if !p.OK {
			res = "FAILED: " + p.Error
		}
		if p.Count == 0 {
			res = "waiting for a port"
		}
		row("publish", "%s: %s", p.Consumer, res)
	}
	tw.Flush()
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}
