package provider

import (
	"fmt"
	"slices"
	"strings"
)

// List is the providers a program knows, by name; the command line, the
// configuration and `vpnfwd providers` take it as given (package
// provider/all lists vpnfwd's). There is no global registry.
type List []Info

// NewList checks infos and sorts them by name: a name given twice, or a
// flag two providers declare for different keys, is an error.
func NewList(infos ...Info) (List, error) {
	for i, a := range infos {
		for _, b := range infos[:i] {
			if a.Name == b.Name {
				return nil, fmt.Errorf("provider %s listed twice", a.Name)
			}
			for _, oa := range a.Options {
				for _, ob := range b.Options {
					if oa.Flag != "" && oa.Flag == ob.Flag && oa.Key != ob.Key {
						return nil, fmt.Errorf("flag --%s is %s's %q and %s's %q", oa.Flag, a.Name, oa.Key, b.Name, ob.Key)
					}
				}
			}
		}
	}
	l := slices.Clone(List(infos))
	slices.SortFunc(l, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return l, nil
}

// MustList is NewList for a list fixed in the code: an error is a
// programming error, and panics.
func MustList(infos ...Info) List {
	l, err := NewList(infos...)
	if err != nil {
		panic("provider: " + err.Error())
	}
	return l
}

// Lookup finds a provider by name (any case).
func (l List) Lookup(name string) (Info, bool) {
	for _, i := range l {
		if i.Name == strings.ToLower(name) {
			return i, true
		}
	}
	return Info{}, false
}

// Names lists the providers' names, comma-separated.
func (l List) Names() string {
	var n []string
	for _, i := range l {
		n = append(n, i.Name)
	}
	return strings.Join(n, ", ")
}
