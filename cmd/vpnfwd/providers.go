package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/azirevpn"
	"github.com/vpnfwd/vpnfwd/provider/natpmp"
	"github.com/vpnfwd/vpnfwd/provider/perfectprivacy"
	"github.com/vpnfwd/vpnfwd/provider/pia"
	"github.com/vpnfwd/vpnfwd/provider/privatevpn"
	"github.com/vpnfwd/vpnfwd/provider/protonvpn"
	"github.com/vpnfwd/vpnfwd/provider/static"
)

// providers is every provider vpnfwd knows.
var providers = []provider.Info{protonvpn.Info, pia.Info, natpmp.Info, privatevpn.Info, perfectprivacy.Info, azirevpn.Info,
	static.AirVPN, static.Windscribe, static.TorGuard, static.Info}

func lookupProvider(name string) (provider.Info, bool) {
	for _, p := range providers {
		if p.Name == strings.ToLower(name) {
			return p, true
		}
	}
	return provider.Info{}, false
}

func providerNames() string {
	var n []string
	for _, p := range providers {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

func runProviders(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "providers", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	for _, p := range providers {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Summary)
		fmt.Fprintf(tw, "\tneeds:\t%s\n", p.Needs)
		fmt.Fprintf(tw, "\tport:\t%s\n", p.Port)
		fmt.Fprintf(tw, "\trenewal:\t%s\n", p.Renewal)
	}
	return tw.Flush()
}
