package publish

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vpnfwd/vpnfwd/internal/atomicfile"
)

// File writes the ports to a file, one per line. Normally it replaces the
// file atomically (a temporary file and a rename). A file that is a mount
// point (gluetun users bind-mount /tmp/gluetun/forwarded_port into other
// containers) cannot be renamed onto (EBUSY), and a sidecar that watches it
// with inotify for close_write never sees a rename: such a file is written
// in place. When the port is lost the file is emptied, not deleted, so
// watchers keep watching the same path.
type File struct {
	Path string
	Log  *slog.Logger

	once    sync.Once
	inPlace bool
}

// Name implements Consumer.
func (f *File) Name() string { return "file:" + f.Path }

// Publish implements Consumer.
func (f *File) Publish(_ context.Context, ev Event) error {
	f.once.Do(f.chooseMode)
	var b strings.Builder
	for _, p := range ev.Ports {
		b.WriteString(strconv.Itoa(int(p)))
		b.WriteByte('\n')
	}
	data := []byte(b.String())
	if f.inPlace {
		return writeInPlace(f.Path, data)
	}
	err := atomicfile.Write(f.Path, data, 0o644)
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
		f.inPlace = true
		f.log().Info("port file: renaming onto it failed; writing it in place from now on", "path", f.Path, "err", err)
		return writeInPlace(f.Path, data)
	}
	return err
}

func (f *File) log() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
}

// chooseMode writes in place when the file is a mount point.
func (f *File) chooseMode() {
	abs, err := filepath.Abs(f.Path)
	if err != nil {
		return
	}
	if isMountPoint(abs) {
		f.inPlace = true
		f.log().Info("port file is a mount point (bind-mounted): writing it in place", "path", f.Path)
		return
	}
	f.log().Debug("port file: replaced atomically (temporary file and rename)", "path", f.Path)
}

// isMountPoint reports whether path is listed as a mount point in
// /proc/self/mountinfo.
func isMountPoint(path string) bool {
	fh, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == path {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// writeInPlace truncates and rewrites the file (one write, then fsync and
// close: an inotify watcher sees close_write).
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
