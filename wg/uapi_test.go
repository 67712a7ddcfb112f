package wg_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The control socket answers WireGuard's own protocol (what `wg show`
// sends), is the owner's only, and is not taken from another process.
func TestServeUAPI(t *testing.T) {
	dev, _ := clientDevice(t)
	path := filepath.Join(t.TempDir(), "run", "vpnfwd.sock")
	u, err := dev.ServeUAPI(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", fi, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("get=1\n\n"))
	var got []string
	sc := bufio.NewScanner(c)
	for sc.Scan() && sc.Text() != "" {
		got = append(got, sc.Text())
	}
	c.Close()
	text := strings.Join(got, "\n")
	if !strings.Contains(text, "public_key=") || !strings.HasSuffix(text, "errno=0") {
		t.Errorf("get answered:\n%s", text)
	}
	if _, err := dev.ServeUAPI(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second server on a live socket: %v", err)
	}
	u.Close()
	u.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}
