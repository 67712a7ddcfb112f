// Command vpnfwd gives a service behind a commercial VPN a forwarded port
// that stays open, over embedded userspace WireGuard: no root, no kernel
// module, no /dev/net/tun. See 'vpnfwd help'.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/vpnfwd/vpnfwd/netns"
	"github.com/vpnfwd/vpnfwd/wget"
)

var version = "0.1.0-dev"

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv is the process's world, replaceable in tests.
type cliEnv struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	// roots, when set, is trusted for providers' HTTPS instead of the
	// system store (tests run a private CA).
	roots *x509.CertPool
}

var commands []command

func init() {
	commands = []command{
		{"up", "bring the tunnel up, get a forwarded port and keep it", runUp},
		{"exec", "run a command in a network namespace whose only way out is the tunnel (no root needed)", runExec},
		{"status", "show a running instance's state (--json for JSON)", runStatus},
		{"port", "print the forwarded port of a running instance", runPort},
		{"providers", "list the port-forwarding providers and what each needs", runProviders},
		{"options", "list every setting: flag, environment variable, TOML key, default (--markdown for the reference)", runOptions},
		{"check", "check a configuration and this machine for it, starting nothing (exit 1 naming what is wrong)", runCheck},
		{"completion", "print shell completion for bash, zsh or fish", runCompletion},
		{"killswitch", "show ('status') or remove ('off') the kill switch rules", runKillSwitch},
		{"leak-check", "prove nothing leaks: exit IP, DNS, IPv6, kill switch, port (exit 0 ok, 1 leak, 2 could not check)", runLeakCheck},
		{"demo", "run the whole flow against an in-process VPN provider", runDemo},
		{"version", "print the version", runVersion},
	}
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// defaultMemoryLimit is the soft Go memory limit when GOMEMLIMIT is unset:
// after bulk transfers the garbage collector hands buffers back instead of
// keeping the high-water mark (measured in bench/whole-path.sh).
const defaultMemoryLimit = 128 << 20

func main() {
	if os.Getenv(netns.AgentEnv) != "" {
		netns.Agent() // vpnfwd exec's agent, inside CMD's namespace
	}
	if filepath.Base(os.Args[0]) == "wget" {
		// The image's /bin/wget, a link to vpnfwd: gluetun's hooks call
		// GNU Wget (docs/gluetun.md).
		os.Exit(wget.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cliEnv{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}
	os.Exit(run(ctx, env, os.Args[1:]))
}

func run(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) == 2 && args[0] == "help" { // vpnfwd help COMMAND
			return run(ctx, env, []string{args[1], "-h"})
		}
		usage(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-v" || args[0] == "-version" {
		args = []string{"version"}
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		if err == nil {
			return 0
		}
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var pe *parseError
		if errors.As(err, &pe) {
			return 2 // the flag package has already said what is wrong
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintf(env.stderr, "vpnfwd %s: %v\n", c.name, ee.err)
			}
			return ee.code
		}
		fmt.Fprintf(env.stderr, "vpnfwd %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(env.stderr, "vpnfwd: unknown command %q\n", args[0])
	var near []string
	for _, c := range commands {
		if editDistance(args[0], c.name) <= 2 {
			near = append(near, c.name)
		}
	}
	if len(near) > 0 {
		fmt.Fprintf(env.stderr, "Did you mean %s? ", strings.Join(near, " or "))
	}
	fmt.Fprintln(env.stderr, "Run 'vpnfwd help' for the commands.")
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "vpnfwd %s: a forwarded port through your VPN, kept open, over userspace WireGuard.\n\nUsage: vpnfwd COMMAND [flags]\n\n", version)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n'vpnfwd COMMAND -h' shows a command's flags and their defaults; 'vpnfwd --version' the build. Every flag of 'up' is also a VPNFWD_* environment variable.\n")
}

// parseError is a command-line error the flag package already printed.
type parseError struct{ error }

// parseFlags parses args, marking errors as usage errors (exit 2): -h
// prints the command's whole help on stdout; a bad flag its error and a
// one-line hint on stderr.
func parseFlags(fs *flag.FlagSet, args []string) error {
	full := fs.Usage
	fs.Usage = func() {} // the flag package calls it on every error
	err := fs.Parse(args)
	fs.Usage = full
	switch {
	case errors.Is(err, flag.ErrHelp):
		full()
	case err != nil:
		// The flag set's name is "vpnfwd NAME" and its output the
		// command's stderr (newFlagSet).
		unknownFlag(fs.Output(), fs, strings.TrimPrefix(fs.Name(), "vpnfwd "), err)
		return &parseError{err}
	}
	return err
}

func newFlagSet(env *cliEnv, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("vpnfwd "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	h := flagHelp{name: name, args: args}
	fs.Usage = func() { h.print(env, fs) }
	return fs
}

func runVersion(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, versionLine())
	return nil
}
