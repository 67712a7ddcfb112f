// Package secret is how vpnfwd holds and reads secrets (passwords, API
// tokens, API keys): a String prints as [redacted] everywhere (fmt, slog,
// JSON, TOML), and Read takes a secret given inline or in a file, the one
// reader the configuration, the providers and the publishers share.
package secret

import (
	"fmt"
	"os"
	"strings"
)

// String is a secret string. It prints as [redacted]; convert it with
// string() on purpose where the secret is used.
type String string

func (s String) String() string               { return "[redacted]" }
func (s String) GoString() string             { return "[redacted]" }
func (s String) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *String) UnmarshalText(b []byte) error { *s = String(b); return nil }

// Read returns the secret from file when one is named (without the line
// ending editors and `echo` add), else inline. The error names the file,
// never the secret.
func Read(inline String, file string) (string, error) {
	if file == "" {
		return string(inline), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading secret: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
