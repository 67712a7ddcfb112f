package unixsock

import (
	"os"
	"path/filepath"
	"testing"
)

func TestModeAtBind(t *testing.T) {
	for _, mode := range []uint32{0o600, 0o660} {
		path := filepath.Join(t.TempDir(), "s.sock")
		l, err := Listen(path, mode)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		l.Close()
		if err != nil || uint32(fi.Mode().Perm()) != mode {
			t.Errorf("mode %04o: socket %v %v", mode, fi.Mode(), err)
		}
	}
}
