package rootnet

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNS runs f on an OS thread that has entered network namespace ns, so
// sockets f opens live there (they keep working from any goroutine
// afterwards). The thread is thrown away when f returns, never reused in
// the machine's own namespace.
func (n *Net) InNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the goroutine ends locked, and the runtime
		// ends the thread with it.
		fd, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer fd.Close()
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
