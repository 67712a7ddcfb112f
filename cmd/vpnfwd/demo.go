package main

import (
	"context"
	"log/slog"

	"github.com/vpnfwd/vpnfwd/demo/tour"
)

// runDemo is `vpnfwd demo`: the whole flow against an in-process VPN
// provider, no account, no root (package demo/tour).
func runDemo(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "demo", "[--verbose]")
	verbose := fs.Bool("verbose", false, "also show vpnfwd's own log")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log, _ = newLogger(env.stderr, "debug")
	}
	return tour.Run(ctx, env.stdout, log, version)
}
