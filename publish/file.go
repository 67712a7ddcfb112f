package publish

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File writes the ports to a file the way gluetun writes
// VPN_PORT_FORWARDING_STATUS_FILE (internal/portforward/service/fs.go,
// writePortForwardedFile): in place (truncate and write, as os.WriteFile
// does), the ports joined by "\n" with no newline after the last, and the
// file emptied, not deleted, when the port is lost. In place matters:
// sidecars watch the file itself with `inotifywait -e close_write` (or
// modify) and read it whole; a rename onto it would leave them watching
// the old inode, and a bind-mounted file cannot be renamed onto at all.
type File struct {
	Path string
	Log  *slog.Logger
}

// Name implements Consumer.
func (f *File) Name() string { return "file:" + f.Path }

// Publish implements Consumer.
func (f *File) Publish(_ context.Context, ev Event) error {
	ports := make([]string, len(ev.Ports))
	for i, p := range ev.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	if dir := filepath.Dir(f.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("port file: %w", err)
		}
	}
	return writeInPlace(f.Path, []byte(strings.Join(ports, "\n")))
}

// writeInPlace writes data over path in one write after truncating it, and
// syncs it: a watcher hears one close_write with the whole content.
func writeInPlace(path string, data []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return fh.Close()
}
