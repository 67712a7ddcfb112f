package main

import (
	"context"
	"crypto/rsa"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/all"
	"github.com/vpnfwd/vpnfwd/provider/pia"
)

func runProviders(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) >= 2 && args[0] == "pia" && args[1] == "regions" {
		return runPIARegions(ctx, env, args[2:])
	}
	fs := newFlagSet(env, "providers", "[NAME] | pia regions [--measure]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	list := all.Providers
	if fs.NArg() > 0 {
		info, ok := all.Providers.Lookup(fs.Arg(0))
		if !ok || fs.NArg() > 1 {
			return &exitError{2, fmt.Errorf("no provider %q; providers: %s ('vpnfwd providers' says what each needs)", strings.Join(fs.Args(), " "), all.Providers.Names())}
		}
		list = provider.List{info}
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Summary)
		fmt.Fprintf(tw, "\tneeds:\t%s\n", p.Needs)
		fmt.Fprintf(tw, "\tport:\t%s\n", p.Port)
		fmt.Fprintf(tw, "\trenewal:\t%s\n", p.Renewal)
		for i, o := range p.Options {
			label := ""
			if i == 0 {
				label = "options:"
			}
			fmt.Fprintf(tw, "\t%s\t%s\n", label, optionHelp(o))
		}
	}
	return tw.Flush()
}

// runPIARegions is `vpnfwd providers pia regions`: PIA's regions, which
// forward ports, and with --measure their latency from here.
func runPIARegions(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "providers pia regions", "[--measure] [--serverlist-url URL] [--serverlist-key-file FILE]")
	listURL := fs.String("serverlist-url", pia.DefaultServerListURL, "server list `URL`")
	keyFile := fs.String("serverlist-key-file", "", "PIA's server-list signing key `FILE` (PEM) to check the list with")
	measure := fs.Bool("measure", false, "measure each port-forwarding region's latency")
	all := fs.Bool("all", false, "also list regions that do not forward ports")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var key *rsa.PublicKey
	if *keyFile != "" {
		k, err := pia.LoadSigningKey(*keyFile)
		if err != nil {
			return err
		}
		key = k
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", *listURL, nil)
	resp, err := provider.HTTPClient(&net.Dialer{}, nil, "").Do(req)
	if err != nil {
		return fmt.Errorf("PIA server list: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	list, err := pia.ParseServerList(body, key)
	if err != nil {
		return err
	}
	if key == nil {
		fmt.Fprintln(env.stderr, "note: list not verified (--serverlist-key-file checks its signature)")
	}
	rtt := map[string]time.Duration{}
	if *measure {
		for _, l := range list.Measure(ctx, &net.Dialer{}) {
			rtt[l.Region.ID] = l.RTT
		}
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCOUNTRY\tPORT FORWARD\tSTATE\tLATENCY")
	for _, r := range list.Regions {
		if !r.PortForward && !*all {
			continue
		}
		state, lat := "online", "-"
		if r.Offline {
			state = "offline"
		}
		if d, ok := rtt[r.ID]; ok {
			lat = d.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", r.ID, r.Name, r.Country, r.PortForward, state, lat)
	}
	return tw.Flush()
}

// optionHelp is one provider option for `vpnfwd providers`:
// "region = ID (--region, VPNFWD_REGION): PIA region ID (...)".
func optionHelp(o provider.Option) string {
	name, usage := flag.UnquoteUsage(&flag.Flag{Usage: o.Usage, Value: new(stringValue)})
	where := "TOML only"
	if o.Flag != "" {
		where = "--" + o.Flag + ", " + config.EnvName(o.Flag)
	}
	if name == "" || name == "value" {
		name = "..."
	}
	return fmt.Sprintf("%s = %s (%s): %s", o.Key, name, where, usage)
}

type stringValue string

func (s *stringValue) String() string     { return string(*s) }
func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
