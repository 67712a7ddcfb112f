package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vpnfwd/vpnfwd/killswitch"
)

// runKillSwitch is `vpnfwd killswitch status|off`.
func runKillSwitch(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "killswitch", "status [--json] [--table NAME] | off [--table NAME]")
	asJSON := fs.Bool("json", false, "status as JSON")
	table := fs.String("table", killswitch.DefaultTable, "the kill switch's nftables `TABLE`")
	if len(args) == 0 {
		fs.Usage()
		return &exitError{2, nil}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fs.Usage()
		return nil
	}
	sub := args[0]
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	switch sub {
	case "status":
		info, err := killswitch.Status(*table)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(info)
		}
		if !info.Installed {
			fmt.Fprintf(env.stdout, "kill switch: off (no nftables table %q in this network namespace)\n", *table)
			return nil
		}
		ep := "none yet"
		if info.Endpoint.IsValid() {
			ep = info.Endpoint.String()
		}
		fmt.Fprintf(env.stdout, "kill switch: on (table inet %s, scope %s)\nendpoint allowed: %s\n", info.Table, info.Scope, ep)
		for _, r := range info.Rules {
			fmt.Fprintf(env.stdout, "  %s\n", r)
		}
		return nil
	case "off":
		if err := killswitch.Remove(*table); err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, "kill switch: off")
		return nil
	}
	return &exitError{2, fmt.Errorf("unknown subcommand %q: want status or off", sub)}
}
