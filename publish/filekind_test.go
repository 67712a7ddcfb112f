package publish

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A port file that is not a regular file is refused at once with an
// error naming it, at start (CheckFile) and at each write: a FIFO
// without a reader used to block vpnfwd in open(2) for good, past
// SIGTERM; one with a reader, or a device, would take the port.
func TestPortFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	readFIFO := filepath.Join(dir, "fifo-read")
	if err := syscall.Mkfifo(readFIFO, 0o644); err != nil {
		t.Fatal(err)
	}
	// A reader that never reads: opening for writing then succeeds.
	r, err := os.OpenFile(readFIFO, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"FIFO without a reader", fifo, "is a FIFO"},
		{"FIFO with a reader", readFIFO, "is a FIFO"},
		{"symlink to a FIFO", link, "is a FIFO"},
		{"directory", dir, "is a directory"},
		{"device", "/dev/null", "is a device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckFile(tt.path); err == nil || !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckFile(%s): %v (want %q naming the file)", tt.path, err, tt.want)
			}
			done := make(chan error, 1)
			go func() { done <- (&File{Path: tt.path}).Publish(context.Background(), portEv("port", 4242)) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), "not a regular file") {
					t.Errorf("Publish to %s: %v (want it refused, naming the file)", tt.path, err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Publish to %s still blocked after 5 s", tt.path)
				if f, err := os.OpenFile(tt.path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					<-done // a reader lets the blocked open go on
					f.Close()
				}
			}
		})
	}
	for _, ok := range []string{filepath.Join(dir, "new"), filepath.Join(dir, "sub", "new")} {
		if err := CheckFile(ok); err != nil {
			t.Errorf("CheckFile(%s): %v (a missing file is created)", ok, err)
		}
	}
}
