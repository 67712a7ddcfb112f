package publish

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/vpnfwd/vpnfwd/secret"
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
	// Owner, when set, is given the file after each write (gluetun's
	// PUID and PGID, its 1000:1000 default, as root).
	Owner *Owner
}

// Owner is a file's user and group.
type Owner struct{ UID, GID int }

// Name implements Consumer.
func (f *File) Name() string { return "file:" + f.Path }

// Publish implements Consumer.
func (f *File) Publish(_ context.Context, ev Event) error {
	// In order, as gluetun writes them (its service sorts the ports).
	sorted := slices.Sorted(slices.Values(ev.Ports))
	ports := make([]string, len(sorted))
	for i, p := range sorted {
		ports[i] = strconv.Itoa(int(p))
	}
	if dir := filepath.Dir(f.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("port file: %w", err)
		}
	}
	if err := writeInPlace(f.Path, []byte(strings.Join(ports, "\n"))); err != nil {
		return err
	}
	if f.Owner != nil {
		if err := os.Chown(f.Path, f.Owner.UID, f.Owner.GID); err != nil {
			return fmt.Errorf("port file: giving it to %d:%d: %w", f.Owner.UID, f.Owner.GID, err)
		}
	}
	return nil
}

// CheckFile says whether path can be a port file: absent (it is then
// created), or a regular file (a symlink to one will do). A FIFO, a
// device or a directory is refused with an error naming it: writing to a
// FIFO waits for a reader forever, and a device is not where a port
// belongs. vpnfwd checks at start; Publish checks again at each write.
func CheckFile(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("port file: %w", err)
	}
	return regular(path, fi)
}

func regular(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("port file %s is %s, not a regular file: give the path of a file (it is created if missing)", path, secret.FileKind(fi.Mode()))
}

// writeInPlace writes data over path in one write after truncating it, and
// syncs it: a watcher hears one close_write with the whole content.
//
// The open never waits: O_NONBLOCK makes a FIFO without a reader fail at
// once (ENXIO) instead of blocking vpnfwd for good, and what was opened is
// checked to be a regular file before a byte is written (a FIFO with a
// reader, a device). O_TRUNC is harmless on what is then refused. A
// symlink is followed: one to the real file is a usual setup, and what it
// leads to is checked the same.
func writeInPlace(path string, data []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		// ENXIO (a FIFO without a reader), EISDIR: say what it is.
		if fi, serr := os.Stat(path); serr == nil && !fi.Mode().IsRegular() {
			return regular(path, fi)
		}
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fi, err := fh.Stat()
	if err == nil {
		err = regular(path, fi)
	}
	if err != nil {
		fh.Close()
		return err
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
