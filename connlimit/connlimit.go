// Package connlimit caps the connections a local listener holds (the
// control API, the proxies, the local forwards), counted from accept to
// close: at most Max at once, at most PerAddr from one address off this
// host, and the addresses off this host together at most Max minus
// Reserve, so that this host's own programs (a health check on loopback)
// always find room. A connection over a cap is closed as soon as it is
// accepted, so strangers holding connections open cannot use up the
// descriptors the bridge needs for remote peers.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Limits are a listener's caps.
type Limits struct {
	// Max bounds the connections held at once, from anyone.
	Max int
	// PerAddr bounds those from one address off this host.
	PerAddr int
	// Reserve is the part of Max only this host's peers may use:
	// connections from other addresses together hold at most
	// Max-Reserve. This host's peers are loopback, a peer whose address
	// is the listener's own (a program here dialling the address the
	// listener is bound to) and unix sockets.
	Reserve int
}

// Listener is a capped net.Listener. Close the connections it returns to
// free their place.
type Listener struct {
	net.Listener
	lim Limits

	mu     sync.Mutex
	open   int // all held
	remote int // held by peers off this host
	byAddr map[netip.Addr]int

	refused atomic.Int64
}

// New caps l. A Reserve over Max is taken as Max (nobody off this host
// gets in).
func New(l net.Listener, lim Limits) *Listener {
	lim.Reserve = min(max(lim.Reserve, 0), lim.Max)
	return &Listener{Listener: l, lim: lim, byAddr: map[netip.Addr]int{}}
}

// Accept returns the next connection within the caps; those over a cap
// are closed and counted (Refused).
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a, local := peer(c)
		if !l.take(a, local) {
			c.Close()
			l.refused.Add(1)
			continue
		}
		return &conn{Conn: c, l: l, a: a, local: local}, nil
	}
}

// take counts a new connection from a (local: from this host) if the
// caps have room for it.
func (l *Listener) take(a netip.Addr, local bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.lim.Max {
		return false
	}
	if !local {
		if l.remote >= l.lim.Max-l.lim.Reserve || l.byAddr[a] >= l.lim.PerAddr {
			return false
		}
		l.remote++
		l.byAddr[a]++
	}
	l.open++
	return true
}

func (l *Listener) release(a netip.Addr, local bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !local {
		l.remote--
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

// Refused is how many connections were closed over a cap.
func (l *Listener) Refused() int64 { return l.refused.Load() }

type conn struct {
	net.Conn
	l     *Listener
	a     netip.Addr
	local bool
	once  sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.a, c.local) })
	return err
}

// peer is c's remote address and whether it is on this host: loopback,
// the address c was accepted on (a peer elsewhere that claims it never
// sees the answer to its SYN, which goes to this host, so it never gets
// an accepted connection), or not IP (a unix socket).
func peer(c net.Conn) (netip.Addr, bool) {
	r, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, true
	}
	a, _ := netip.AddrFromSlice(r.IP)
	a = a.Unmap()
	if a.IsLoopback() {
		return a, true
	}
	if l, ok := c.LocalAddr().(*net.TCPAddr); ok {
		if la, _ := netip.AddrFromSlice(l.IP); la.Unmap() == a {
			return a, true
		}
	}
	return a, false
}
