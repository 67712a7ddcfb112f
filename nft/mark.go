package nft

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
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

// MarkedResolver resolves over marked sockets with servers, in turn, or
// with those /etc/resolv.conf names when servers is empty. (Once
// --dns-resolv-conf has pointed the file at vpnfwd's own forwarder, its
// servers lead through the tunnel: useless for finding the endpoint.)
func MarkedResolver(mark uint32, servers []netip.AddrPort) *net.Resolver {
	d := MarkedDialer(mark)
	if len(servers) == 0 {
		return &net.Resolver{PreferGo: true, Dial: d.DialContext}
	}
	var next atomic.Uint32
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		ap := servers[int(next.Add(1)-1)%len(servers)]
		return d.DialContext(ctx, network, ap.String())
	}}
}
