package config

import (
	"slices"
	"testing"
	"time"
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

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second: "30s", 2 * time.Minute: "2m", 15 * time.Minute: "15m", time.Hour: "1h",
		90 * time.Second: "1m30s", 61 * time.Minute: "1h1m", 1500 * time.Millisecond: "1.5s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}
