// Package state keeps what vpnfwd must remember across restarts (the last
// port, a provider's token and port-forwarding payload) as small JSON files
// in one directory, written atomically with mode 0600. A corrupt file is
// reported and treated as absent, never fatal.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vpnfwd/vpnfwd/atomicfile"
)

// ErrNotFound means nothing was saved under that name (or it was corrupt).
var ErrNotFound = errors.New("no saved state")

// Dir is a state directory. The zero value (or an empty Path) remembers
// nothing.
type Dir struct {
	Path string
	// Warn hears about corrupt files (may be nil).
	Warn func(msg string, args ...any)
}

// DefaultPath is $XDG_STATE_HOME/vpnfwd, ~/.local/state/vpnfwd, or
// /var/lib/vpnfwd for root.
func DefaultPath() string {
	if os.Geteuid() == 0 {
		return "/var/lib/vpnfwd"
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "vpnfwd")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "vpnfwd")
	}
	return ""
}

func (d Dir) file(name string) string { return filepath.Join(d.Path, name+".json") }

// Load reads name into v. Missing or corrupt: ErrNotFound (a corrupt file
// is also reported through Warn).
func (d Dir) Load(name string, v any) error {
	if d.Path == "" {
		return ErrNotFound
	}
	b, err := os.ReadFile(d.file(name))
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotFound
	}
	if err != nil {
		d.warn("state file unreadable, ignoring it", "file", d.file(name), "err", err)
		return ErrNotFound
	}
	if err := json.Unmarshal(b, v); err != nil {
		d.warn("state file corrupt, ignoring it", "file", d.file(name), "err", err)
		return ErrNotFound
	}
	return nil
}

// Save writes v under name, atomically, readable by the owner only.
func (d Dir) Save(name string, v any) error {
	if d.Path == "" {
		return nil
	}
	if strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("bad state name %q", name)
	}
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(d.file(name), b, 0o600)
}

// Delete forgets name.
func (d Dir) Delete(name string) {
	if d.Path != "" {
		os.Remove(d.file(name))
	}
}

func (d Dir) warn(msg string, args ...any) {
	if d.Warn != nil {
		d.Warn(msg, args...)
	}
}
