package killswitch

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// MarkedDialer returns a dialer whose sockets carry mark (SO_MARK), so the
// kill switch lets exactly them out: vpnfwd's lookups of the endpoint
// name and a provider's login before the tunnel exists.
func MarkedDialer(mark uint32) *net.Dialer {
	return &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

// MarkedResolver resolves with the system's DNS servers over marked
// sockets.
func MarkedResolver(mark uint32) *net.Resolver {
	d := MarkedDialer(mark)
	return &net.Resolver{PreferGo: true, Dial: d.DialContext}
}
