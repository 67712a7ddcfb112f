package wg

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/unixsock"
)

// RunDir is where WireGuard's tools look for a userspace device's control
// socket (NAME.sock): `wg show NAME` works on vpnfwd's device when it
// serves one there.
const RunDir = "/var/run/wireguard"

// UAPI is a served control socket; Close removes it and waits for the
// connections being answered.
type UAPI struct {
	l    net.Listener
	path string
	wg   sync.WaitGroup
	once sync.Once
}

// ServeUAPI serves the device's UAPI (what `wg show` and `wg set` speak)
// on a unix socket at path, mode 0600: it shows and can change the
// private key, so only the same user may use it. A live socket already
// there (another process's) is left alone and is an error; a stale one is
// replaced.
func (d *Device) ServeUAPI(path string) (*UAPI, error) {
	dirMode := os.FileMode(0o700) // the state directory: the user's alone
	if filepath.Dir(path) == RunDir {
		dirMode = 0o755 // as wireguard-go and wg-quick make it
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("WireGuard control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("WireGuard control socket %s is in use by another process (another device of that name?)", path)
	}
	os.Remove(path)
	l, err := unixsock.Listen(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("WireGuard control socket: %w", err)
	}
	u := &UAPI{l: l, path: path}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					d.log.Warn("WireGuard control socket", "err", err)
				}
				return
			}
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				d.dev.IpcHandle(c)
			}()
		}
	}()
	return u, nil
}

// Path is where the socket is.
func (u *UAPI) Path() string { return u.path }

// Close stops serving and removes the socket. Safe twice.
func (u *UAPI) Close() error {
	u.once.Do(func() {
		u.l.Close()
		os.Remove(u.path)
		u.wg.Wait()
	})
	return nil
}
