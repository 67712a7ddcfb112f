package config

import (
	"fmt"
	"strings"

	"github.com/vpnfwd/vpnfwd/secret"
)

// A secret given on the command line can be read by every user and
// program of the machine in /proc/PID/cmdline. Flags copy their values
// and blank the secret there once parsed (argString), and Load warns of
// each one, pointing to its file form or the environment
// (cmdlineWarning).

// argString is a flag whose value may hold a secret (all of it, or a
// URL's password): Set keeps a copy and blanks the secret where the
// command line shows it, /proc/PID/cmdline (secret.ScrubArg; a value
// that did not come from vpnfwd's own command line is left alone).
type argString struct {
	s      *string
	secret bool
}

func (a argString) String() string { return "" }
func (a argString) Set(v string) error {
	*a.s = strings.Clone(v) // v's bytes are blanked next
	if a.secret {
		secret.ScrubArg(v)
	} else {
		secret.ScrubArg(urlPassword(v))
	}
	return nil
}

// urlPassword is the password in a URL's user info (as in
// http://admin:PASSWORD@host/), a slice of v itself; else "".
func urlPassword(v string) string {
	_, rest, ok := strings.Cut(v, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return ""
	}
	return pw
}

// cmdlineWarning says, of a flag given on the command line that holds a
// secret, that every user can read it there, and where to give it
// instead; "" when the value holds no secret.
func cmdlineWarning(o Option, v string, all []Option) string {
	what, file, env := "--"+o.Flag, o.Flag+"-file", EnvName(o.Flag)
	switch {
	case o.Flag == "api-auth-default-role":
		if !strings.Contains(v, "apikey") && !strings.Contains(v, "password") {
			return "" // a role with no key or password holds no secret
		}
	case o.Flag == "public-ip-url":
		switch {
		case urlPassword(v) != "":
			what = "the password in --public-ip-url's URL"
		case !strings.Contains(v, "?"):
			return "" // blanked anyway; only a query (?token=) or a password holds a secret
		default:
			what = "the query (a token?) in --public-ip-url's URL"
		}
	case !o.Secret && urlPassword(v) != "":
		// --qbittorrent http://admin:PASSWORD@host: the client's own
		// password setting takes it, where there is one.
		what, file = "the password in --"+o.Flag+"'s URL", o.Flag+"-password-file"
		if has(all, o.Flag+"-password") {
			env = EnvName(o.Flag + "-password")
		}
	case !o.Secret:
		return ""
	}
	instead := "the environment (" + env + ")"
	if has(all, file) {
		instead = "a file (--" + file + " FILE, mode 600) or " + instead
	}
	return fmt.Sprintf("%s was given on the command line, where every user and program of this machine can read it (ps, /proc/PID/cmdline) until vpnfwd has read and blanked it: give it in %s", what, instead)
}

// has says whether options holds a flag of that name.
func has(options []Option, flag string) bool {
	for _, o := range options {
		if o.Flag == flag {
			return true
		}
	}
	return false
}
