// Package connlimit caps the connections a local listener holds (the
// control API, the proxies): at most Max at once, and at most PerAddr
// from one address other than loopback. A connection over a cap is
// closed as soon as it is accepted, so strangers holding connections open
// cannot use up the descriptors the bridge needs for remote peers.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// Listener is a capped net.Listener.
type Listener struct {
	net.Listener
	Max, PerAddr int
	// Refused counts connections closed over a cap.
	Refused func()

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int
}

// New caps l.
func New(l net.Listener, max, perAddr int) *Listener {
	return &Listener{Listener: l, Max: max, PerAddr: perAddr, byAddr: map[netip.Addr]int{}}
}

// Accept returns the next connection within the caps.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := addrOf(c.RemoteAddr())
		l.mu.Lock()
		over := l.open >= l.Max || (a.IsValid() && !a.IsLoopback() && l.byAddr[a] >= l.PerAddr)
		if !over {
			l.open++
			if a.IsValid() {
				l.byAddr[a]++
			}
		}
		l.mu.Unlock()
		if over {
			c.Close()
			if l.Refused != nil {
				l.Refused()
			}
			continue
		}
		return &conn{Conn: c, l: l, a: a}, nil
	}
}

func (l *Listener) release(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if a.IsValid() {
		if l.byAddr[a]--; l.byAddr[a] <= 0 {
			delete(l.byAddr, a)
		}
	}
}

// Open is how many connections are held now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

type conn struct {
	net.Conn
	l    *Listener
	a    netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.a) })
	return err
}

func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	return netip.Addr{} // a unix socket: one caller, the overall cap only
}
