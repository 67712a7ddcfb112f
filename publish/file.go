package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File writes the ports to a file, one per line, atomically (temporary file
// and rename). When the port is lost the file is emptied, not deleted, so
// watchers keep watching the same path.
type File struct{ Path string }

// Name implements Consumer.
func (f File) Name() string { return "file:" + f.Path }

// Publish implements Consumer.
func (f File) Publish(_ context.Context, ev Event) error {
	var b strings.Builder
	for _, p := range ev.Ports {
		b.WriteString(strconv.Itoa(int(p)))
		b.WriteByte('\n')
	}
	return WriteFileAtomic(f.Path, []byte(b.String()), 0o644)
}

// WriteFileAtomic replaces path with data so readers see the old or the new
// contents, never a partial file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
