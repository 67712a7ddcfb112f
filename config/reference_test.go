package config

import (
	"slices"
	"testing"
)

// Every TOML key vpnfwd reads is documented: by a flag's usage or by
// FileOnly; and FileOnly names no key that does not exist.
func TestEveryKeyDocumented(t *testing.T) {
	if u := Undocumented(); len(u) > 0 {
		t.Errorf("TOML keys with no flag and no FileOnly entry (add one to config/reference.go): %q", u)
	}
	keys := Keys()
	for k := range FileOnly {
		if !slices.Contains(keys, k) {
			t.Errorf("FileOnly names %q, which is no TOML key", k)
		}
	}
}
