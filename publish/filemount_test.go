package publish

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// A port file bind-mounted onto another path (as users mount gluetun's
// /tmp/gluetun/forwarded_port into other containers) cannot be renamed
// onto: vpnfwd writes it in place, and the bind mount's other side sees
// each port. Root only: the bind mount is made in a mount namespace of a
// thread of its own, which is then thrown away.
func TestBindMountedPortFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a mount namespace); CI runs it as root")
	}
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared_port") // the "other container's" view
	target := filepath.Join(dir, "forwarded_port")
	for _, p := range []string{shared, target} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 1)
	var seen []string
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount(shared, target, "", unix.MS_BIND, ""); err != nil {
			errc <- err
			return
		}
		f := &File{Path: target}
		for _, port := range []uint16{40001, 40002} {
			if err := f.Publish(context.Background(), portEv("port", port)); err != nil {
				errc <- err
				return
			}
			b, _ := os.ReadFile(shared)
			seen = append(seen, string(b))
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != "40001" || seen[1] != "40002" {
		t.Errorf("the bind mount's other side saw %q", seen)
	}
}
