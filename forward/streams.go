package forward

import (
	"net"
	"net/netip"
)

// StreamListener is a data plane whose inbound TCP arrives on ordinary
// listeners (a kernel TUN, in tun mode) instead of as handshake requests
// (netstack's HandleTCP). A Bridge over one opens a listener per TCP
// route and bridges what it accepts as it does netstack's connections.
type StreamListener interface {
	ListenTCP(port uint16) (net.Listener, error)
}

// accepted is a TCPRequest for a connection a kernel listener already
// accepted: its handshake is done, so Reject closes it.
type accepted struct{ c net.Conn }

func (a accepted) LocalAddr() netip.AddrPort  { return unmapped(a.c.LocalAddr()) }
func (a accepted) RemoteAddr() netip.AddrPort { return unmapped(a.c.RemoteAddr()) }
func (a accepted) Accept() (net.Conn, error)  { return a.c, nil }
func (a accepted) Reject()                    { a.c.Close() }
func (a accepted) Crowded() bool              { return false }

// unmapped is a's address and port, an IPv4-mapped address as IPv4 (a
// dual-stack listener's peers).
func unmapped(a net.Addr) netip.AddrPort {
	ap := addrPortOf(a)
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// setTCPListeners makes the kernel listeners match the TCP routes (under
// b.mu); only for a StreamListener data plane.
func (b *Bridge) setTCPListeners(sl StreamListener) error {
	for port, l := range b.tcpL {
		if _, ok := b.tcp[port]; !ok {
			l.Close()
			delete(b.tcpL, port)
		}
	}
	var firstErr error
	for port := range b.tcp {
		if _, ok := b.tcpL[port]; ok {
			continue
		}
		l, err := sl.ListenTCP(port)
		if err != nil {
			firstErr = err
			continue
		}
		b.tcpL[port] = l
		b.wg.Add(1)
		go b.acceptLoop(l)
	}
	return firstErr
}

// acceptLoop hands each accepted connection to HandleTCP until l closes.
func (b *Bridge) acceptLoop(l net.Listener) {
	defer b.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		go b.HandleTCP(accepted{c})
	}
}
