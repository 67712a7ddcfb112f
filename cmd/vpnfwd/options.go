package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/provider/all"
)

// runOptions is `vpnfwd options`: every setting with its flag, environment
// variable, TOML key and default, from the option table vpnfwd reads
// (--markdown: the reference in docs/configuration.md; --gluetun: the
// gluetun variables vpnfwd reads, as docs/gluetun.md holds them).
func runOptions(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "options", "[--markdown | --gluetun]")
	markdown := fs.Bool("markdown", false, "print the reference as docs/configuration.md holds it")
	gluetun := fs.Bool("gluetun", false, "print the gluetun variables vpnfwd reads, as docs/gluetun.md holds them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("options takes no arguments (got %q)", fs.Args())}
	}
	if *markdown {
		_, err := fmt.Fprint(env.stdout, config.Markdown(all.Providers))
		return err
	}
	if *gluetun {
		_, err := fmt.Fprint(env.stdout, config.GluetunMarkdown())
		return err
	}
	options, fileOnly := config.Reference()
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENVIRONMENT\tTOML KEY\tDEFAULT")
	plain := strings.NewReplacer("`", "").Replace
	for _, r := range options {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Flag, r.Env, r.Key, plain(r.Default))
	}
	seen := map[string]bool{}
	for _, p := range all.Providers {
		for _, o := range p.Options {
			if r := config.ProviderRow(o); r.Flag != "" && !seen[r.Flag] {
				seen[r.Flag] = true
				fmt.Fprintf(tw, "%s\t%s\t%s\t(%s)\n", r.Flag, r.Env, r.Key, p.Name)
			}
		}
	}
	for _, r := range fileOnly {
		fmt.Fprintf(tw, "\t\t%s\t%s\n", r.Key, plain(r.Default))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "\nWhat each means: vpnfwd up -h, vpnfwd options --markdown, docs/configuration.md; each provider's: vpnfwd providers.")
	return nil
}
