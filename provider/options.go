package provider

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/secret"
)

// Kind says how an option's value is read and checked.
type Kind int

const (
	Text     Kind = iota // any string
	Ports                // a port or a list of ports (1-65535): 40001, [1, 2], "1,2"
	Duration             // "45s", "2m", or a number of seconds
	URL                  // http:// or https:// URL
	IPv4                 // an IPv4 address
	Secret               // a secret string: held as secret.String, never printed
	Count                // a whole number from 1 to 5 (e.g. how many ports)
)

// Option is one setting a provider takes: a key of the [provider] TOML
// table, optionally a command-line flag (and so an environment variable
// VPNFWD_<FLAG>), with the help text `vpnfwd providers` and --help show.
// Two providers may declare the same flag only for the same key.
type Option struct {
	Key   string
	Flag  string // without dashes; "" for TOML only
	Usage string // a `WORD` in backquotes names the value in --help
	Kind  Kind
}

// Settings are a provider's option values, as the TOML file gave them
// (strings, integers, arrays) or as strings from flags and the
// environment. Read them with the accessors; Check has validated them.
type Settings map[string]any

// String returns a text setting ("" when unset).
func (s Settings) String(key string) string {
	switch v := s[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case secret.String:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// Secret reads the secret given as key, or in the file named by key_file.
func (s Settings) Secret(key string) (string, error) {
	return secret.Read(secret.String(s.String(key)), s.String(key+"_file"))
}

// Ports reads a list of ports (nil when unset).
func (s Settings) Ports(key string) ([]uint16, error) {
	var items []any
	switch v := s[key].(type) {
	case nil:
		return nil, nil
	case []any:
		items = v
	case string:
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				items = append(items, f)
			}
		}
	default:
		items = []any{v}
	}
	var out []uint16
	for _, it := range items {
		n, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(it)))
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%v is not a port (1-65535)", it)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

// Count reads a Count option (0 when unset).
func (s Settings) Count(key string) (int, error) {
	if s[key] == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s.String(key)))
	if err != nil || n < 1 || n > 5 {
		return 0, fmt.Errorf("%q is not a number from 1 to 5", s.String(key))
	}
	return n, nil
}

// Duration reads a duration (0 when unset).
func (s Settings) Duration(key string) (time.Duration, error) {
	switch v := s[key].(type) {
	case nil:
		return 0, nil
	case int64:
		return time.Duration(v) * time.Second, nil
	}
	str := s.String(key)
	if d, err := time.ParseDuration(str); err == nil {
		return d, nil
	}
	if n, err := strconv.Atoi(str); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return 0, fmt.Errorf("%q is not a duration (e.g. 45s, 2m)", str)
}

// With returns a copy of s with key set to v (s is not changed).
func (s Settings) With(key string, v any) Settings {
	out := make(Settings, len(s)+1)
	for k, x := range s {
		out[k] = x
	}
	out[key] = v
	return out
}

// Check validates settings against the provider's options: a value of
// the wrong kind is an error; a key the provider does not take is a
// warning naming the ones it does (a setting meant for another provider,
// or a typo, is never silently ignored). Secret values are turned into
// secret.String in place, so printing the settings shows none.
func (i Info) Check(s Settings) (warnings []string, err error) {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(s)) {
		o, ok := i.option(k)
		if !ok {
			warnings = append(warnings, fmt.Sprintf("provider.%s: %s takes no such option, ignored (%s)", k, i.Name, i.optionList()))
			continue
		}
		if err := o.check(s); err != nil {
			errs = append(errs, fmt.Errorf("provider.%s: %w", k, err))
		}
	}
	return warnings, errors.Join(errs...)
}

func (o Option) check(s Settings) error {
	switch o.Kind {
	case Ports:
		_, err := s.Ports(o.Key)
		return err
	case Duration:
		_, err := s.Duration(o.Key)
		return err
	case Count:
		_, err := s.Count(o.Key)
		return err
	case URL:
		v := s.String(o.Key)
		if u, err := url.Parse(v); v != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			return fmt.Errorf("%q is not an http:// or https:// URL", v)
		}
	case IPv4:
		v := s.String(o.Key)
		a, err := netip.ParseAddr(v)
		if v != "" && (err != nil || !a.Is4()) {
			return fmt.Errorf("%q is not an IPv4 address", v)
		}
		// A host's address: the unspecified, broadcast, multicast and
		// loopback addresses are nobody's gateway (127.0.0.1 would be
		// vpnfwd's own responder).
		if v != "" && (a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || a.IsMulticast() || a.IsLoopback()) {
			return fmt.Errorf("%s is not a host's address: give the VPN server's address in the tunnel (e.g. 10.2.0.1)", v)
		}
	case Secret:
		if _, ok := s[o.Key].(string); ok {
			s[o.Key] = secret.String(s.String(o.Key))
		} else if _, ok := s[o.Key].(secret.String); !ok {
			return errors.New("want a string")
		}
	default:
		switch s[o.Key].(type) {
		case string, secret.String:
		default:
			return errors.New("want a string")
		}
	}
	return nil
}

func (i Info) option(key string) (Option, bool) {
	for _, o := range i.Options {
		if o.Key == key {
			return o, true
		}
	}
	return Option{}, false
}

func (i Info) optionList() string {
	if len(i.Options) == 0 {
		return "it takes none"
	}
	var keys []string
	for _, o := range i.Options {
		keys = append(keys, o.Key)
	}
	return "its options: " + strings.Join(keys, ", ")
}
