package secret

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Files given for secrets and configs: a FIFO, a device, a directory or a
// huge file is an error naming it, never a wait or an unbounded read.
func TestReadFileRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, MaxFile+1), 0o600)
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, []byte("s3cret\n"), 0o600)
	for path, want := range map[string]string{
		fifo:        "is not a regular file but a FIFO",
		"/dev/zero": "is not a regular file but a device",
		dir:         "is not a regular file but a directory",
		big:         "is larger than",
	} {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s: %v, want %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still reading after 5 s", path)
		}
	}
	if s, err := Read("", ok); err != nil || s != "s3cret" {
		t.Errorf("a real file: %q %v", s, err)
	}
	if w := Loose(ok); w != "" {
		t.Errorf("0600 file: %q", w)
	}
	os.Chmod(ok, 0o644)
	if w := Loose(ok); !strings.Contains(w, "chmod 600 "+ok) || !strings.Contains(w, "0644") {
		t.Errorf("0644 file: %q", w)
	}
}
