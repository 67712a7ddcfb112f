// Package secret is how vpnfwd holds and reads secrets (passwords, API
// tokens, API keys): a String prints as [redacted] everywhere (fmt, slog,
// JSON, TOML), and Read takes a secret given inline or in a file, the one
// reader the configuration, the providers and the publishers share.
package secret

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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
	b, err := ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading secret: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// MaxFile bounds a file vpnfwd reads whole (a secret, a config, a
// wg-quick file): 1 MiB, far above any real one.
const MaxFile = 1 << 20

// ReadFile reads a regular file of at most MaxFile bytes. A FIFO, a device
// or a directory is refused with an error naming it: reading one would
// wait or run forever (`--api-token-file /dev/zero`).
func ReadFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file but %s: give the file itself", path, FileKind(fi.Mode()))
	}
	// O_NONBLOCK: were it swapped for a FIFO since, opening it must not
	// wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a file vpnfwd expects here", path, MaxFile)
	}
	return b, nil
}

// FileKind names what a file that is not a regular file is ("a FIFO",
// "a device", ...), for errors that refuse it.
func FileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// Loose returns a warning when the file holding a secret can be read by
// its group or others (as ssh warns of a key file), else "".
func Loose(path string) string {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("%s holds a secret and is readable by others (mode %04o): chmod 600 %s", path, fi.Mode().Perm(), path)
}

// envSecrets are environment variables that hold secrets besides
// vpnfwd's own VPNFWD_* (all of which are kept from children): gluetun's.
var envSecrets = []string{
	"WIREGUARD_PRIVATE_KEY", "WIREGUARD_PRESHARED_KEY", "OPENVPN_PASSWORD", "VPN_PORT_FORWARDING_PASSWORD",
	"HTTPPROXY_PASSWORD", "SHADOWSOCKS_PASSWORD", "PUBLICIP_API_TOKEN", "HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE",
}

// EnvSecret says whether an environment variable (NAME or NAME=VALUE) is
// vpnfwd's setting or another secret a child must not inherit.
func EnvSecret(kv string) bool {
	name, _, _ := strings.Cut(kv, "=")
	return strings.HasPrefix(name, "VPNFWD_") || slices.Contains(envSecrets, name)
}

// CleanEnv is env without vpnfwd's settings and secrets.
func CleanEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !EnvSecret(kv) {
			out = append(out, kv)
		}
	}
	return out
}

// Protect is called once the configuration is read: the secret variables
// leave the process's environment (no child inherits them), and the
// process becomes non-dumpable, so that /proc/PID/environ — which keeps
// the environment vpnfwd started with — and its memory cannot be read by
// its children or other processes of the same user (only by root).
func Protect() error {
	for _, kv := range os.Environ() {
		if EnvSecret(kv) {
			name, _, _ := strings.Cut(kv, "=")
			os.Unsetenv(name)
		}
	}
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
