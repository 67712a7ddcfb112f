package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/vpnfwd/vpnfwd/config"
)

// How the CLI meets a user: `-h` on any command shows what it does and
// every flag with its default; a mistyped flag gets the error, the
// nearest flags and a one-line hint, not the whole list.

// flagHelp is a command's usage: its summary, its form and its flags.
type flagHelp struct {
	name, args string
}

// print writes the full help of fs.
func (h flagHelp) print(env *cliEnv, fs *flag.FlagSet) {
	w := env.stdout
	fmt.Fprintf(w, "Usage: vpnfwd %s %s\n", h.name, h.args)
	if s := summary(h.name); s != "" {
		fmt.Fprintf(w, "\n%s.\n", strings.ToUpper(s[:1])+s[1:])
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		fmt.Fprintln(w, "\nNo flags.")
		return
	}
	withDefaults(fs)
	fmt.Fprintln(w, "\nFlags (each also a VPNFWD_* environment variable where 'vpnfwd options' lists one):")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// summary is the command's line in 'vpnfwd help' ("" if none).
func summary(name string) string {
	first, _, _ := strings.Cut(name, " ")
	for _, c := range commands {
		if c.name == first {
			return c.summary
		}
	}
	return ""
}

// withDefaults shows the settings' real defaults in the help: up's flags
// are registered empty (a flag given beats the environment and the file,
// so its own default must not), and the defaults live in config's table.
func withDefaults(fs *flag.FlagSet) {
	plain := strings.NewReplacer("`", "").Replace
	for _, o := range config.Options {
		f := fs.Lookup(o.Flag)
		if f == nil || f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			continue
		}
		if d := plain(config.Default(o.Key)); d != "" && d != "false" {
			f.DefValue = d
		}
	}
}

// unknownFlag is the hint after a flag the command does not have: the
// nearest names, then where the list is.
func unknownFlag(w io.Writer, fs *flag.FlagSet, name string, err error) {
	bad := ""
	if msg := err.Error(); strings.HasPrefix(msg, "flag provided but not defined: ") {
		bad = strings.TrimLeft(strings.TrimPrefix(msg, "flag provided but not defined: "), "-")
	}
	var near []string
	if bad != "" {
		fs.VisitAll(func(f *flag.Flag) {
			if editDistance(bad, f.Name) <= max(1, len(bad)/4) || strings.Contains(f.Name, bad) && len(bad) >= 4 {
				near = append(near, "--"+f.Name)
			}
		})
	}
	slices.Sort(near)
	if len(near) > 3 {
		near = near[:3]
	}
	if len(near) > 0 {
		fmt.Fprintf(w, "Did you mean %s? ", strings.Join(near, " or "))
	}
	fmt.Fprintf(w, "Run 'vpnfwd %s -h' for its flags.\n", name)
}

// editDistance is Levenshtein's distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Set at build time (-ldflags "-X main.commit=... -X main.date=..."); else
// read from the Go toolchain's build stamp where there is one.
var commit, date string

// versionLine is what `vpnfwd version` and `--version` print.
func versionLine() string {
	c, d, dirty := commit, date, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.time" && d == "":
				d = s.Value
			case s.Key == "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if c == "" {
		c = "unknown"
	} else if dirty {
		c += "+changes"
	}
	if d == "" {
		d = "unknown"
	}
	return fmt.Sprintf("vpnfwd %s (commit %s, built %s, %s %s/%s)", version, c, d, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
