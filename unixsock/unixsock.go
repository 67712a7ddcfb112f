// Package unixsock listens on unix sockets created with their final mode:
// the umask is narrowed around the bind, so there is no moment in which
// the socket exists with looser permissions (a chmod after listening has
// one). The umask is the process's: a file another goroutine creates in
// that instant gets a stricter mode, never a looser one.
package unixsock

import (
	"net"
	"sync"
	"syscall"
)

var mu sync.Mutex

// Listen binds a unix socket at path whose mode is at most mode (e.g.
// 0o600: the owner only; 0o660: the owner and the group).
func Listen(path string, mode uint32) (net.Listener, error) {
	mu.Lock()
	defer mu.Unlock()
	old := syscall.Umask(int(^mode & 0o777))
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
