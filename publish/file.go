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
	"github.com/vpnfwd/vpnfwd/session"
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
func (f *File) Publish(_ context.Context, ev session.Event) error {
	// In order, as gluetun writes them (its service sorts the ports).
	sorted := slices.Sorted(slices.Values(ev.Ports()))
	ports := make([]string, len(sorted))
	for i, p := range sorted {
		ports[i] = strconv.Itoa(int(p))
	}
	if dir := filepath.Dir(f.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("port file: %w", err)
		}
	}
	return writeInPlace(f.Path, []byte(strings.Join(ports, "\n")), f.Owner)
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

// writeInPlace writes data over path in one write after truncating it,
// gives it to owner (nil: left as is), and syncs it: a watcher hears one
// close_write with the whole content.
//
// The open never waits: O_NONBLOCK makes a FIFO without a reader fail at
// once (ENXIO) instead of blocking vpnfwd for good, and what was opened is
// checked to be a regular file before a byte is written (a FIFO with a
// reader, a device), and only then truncated.
//
// The port file's directory may be another user's (a volume, /tmp), and
// vpnfwd may be root: a symlink or a hard link planted there would have
// it truncate and chown any file (a review emptied and handed over a
// root-only file that way). So a symlink is followed only when root or
// vpnfwd's own user made it, the file itself is opened without following
// one (O_NOFOLLOW), a file with more than one name is refused, and the
// owner is given the open file (fchown), not whatever the name leads to.
func writeInPlace(path string, data []byte, owner *Owner) error {
	target, err := trustedPath(path)
	if err != nil {
		return err
	}
	fh, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		// ENXIO (a FIFO without a reader), EISDIR, ELOOP (a symlink
		// swapped in): say what it is.
		if fi, serr := os.Lstat(target); serr == nil && !fi.Mode().IsRegular() {
			return regular(path, fi)
		}
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fi, err := fh.Stat()
	if err == nil {
		err = regular(path, fi)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); err == nil && ok && st.Nlink > 1 {
		err = fmt.Errorf("port file %s has %d names (hard links): vpnfwd writes only a file of its own; remove it and let vpnfwd create it", path, st.Nlink)
	}
	if err == nil && owner != nil {
		if cerr := fh.Chown(owner.UID, owner.GID); cerr != nil {
			err = fmt.Errorf("port file: giving %s to %d:%d: %w", path, owner.UID, owner.GID, cerr)
		}
	}
	if err != nil {
		fh.Close()
		return err
	}
	if err := fh.Truncate(0); err != nil {
		fh.Close()
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

// trustedPath is path, or where it leads if it is a symlink (or a chain
// of them) made by root or by vpnfwd's own user; a symlink anyone else
// made is refused. The last target need not exist yet (it is created).
func trustedPath(path string) (string, error) {
	cur := path
	for range 8 {
		fi, err := os.Lstat(cur)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return cur, nil // absent (created), or not a symlink
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || (st.Uid != 0 && int(st.Uid) != os.Geteuid()) {
			return "", fmt.Errorf("port file %s leads through a symlink made by uid %d (%s): vpnfwd follows only its own or root's (another user could point it at any file); give the real file's path", path, st.Uid, cur)
		}
		next, err := os.Readlink(cur)
		if err != nil {
			return "", fmt.Errorf("port file %s: %w", path, err)
		}
		if !filepath.IsAbs(next) {
			next = filepath.Join(filepath.Dir(cur), next)
		}
		cur = next
	}
	return "", fmt.Errorf("port file %s: too many symlinks", path)
}
