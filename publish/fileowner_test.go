package publish

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The port file as gluetun writes it: the ports in order, and (as root)
// given to PUID:PGID after each write.
func TestPortFileSortedAndOwned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "forwarded_port")
	f := &File{Path: path}
	if os.Geteuid() == 0 {
		f.Owner = &Owner{UID: 1234, GID: 5678}
	}
	if err := f.Publish(context.Background(), portEv("port", 40003, 40001, 40002)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "40001\n40002\n40003" {
		t.Errorf("port file %q", b)
	}
	if f.Owner == nil {
		t.Skip("not root: the owner is this user")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("owner %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
}
