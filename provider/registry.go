package provider

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

var registry struct {
	sync.Mutex
	infos []Info
}

// Register makes a provider known to the command line, the configuration
// and `vpnfwd providers`; each provider package calls it from init. It
// panics on a name registered twice, or a flag another provider declares
// for a different key (a programming error).
func Register(i Info) {
	registry.Lock()
	defer registry.Unlock()
	for _, o := range registry.infos {
		if o.Name == i.Name {
			panic("provider: " + i.Name + " registered twice")
		}
		for _, a := range o.Options {
			for _, b := range i.Options {
				if a.Flag != "" && a.Flag == b.Flag && a.Key != b.Key {
					panic(fmt.Sprintf("provider: flag --%s is %s's %q and %s's %q", a.Flag, o.Name, a.Key, i.Name, b.Key))
				}
			}
		}
	}
	registry.infos = append(registry.infos, i)
}

// All lists the registered providers by name.
func All() []Info {
	registry.Lock()
	defer registry.Unlock()
	out := slices.Clone(registry.infos)
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup finds a registered provider by name (any case).
func Lookup(name string) (Info, bool) {
	for _, i := range All() {
		if i.Name == strings.ToLower(name) {
			return i, true
		}
	}
	return Info{}, false
}

// Names lists the registered providers' names, comma-separated.
func Names() string {
	var n []string
	for _, i := range All() {
		n = append(n, i.Name)
	}
	return strings.Join(n, ", ")
}
