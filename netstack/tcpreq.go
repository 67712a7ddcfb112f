package netstack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCPRequest is an incoming connection whose SYN has arrived but whose
// handshake has not been answered yet. The handler must call exactly one of
// Accept or Reject; a second call is ignored.
type TCPRequest struct {
	r    *tcp.ForwarderRequest
	once sync.Once
}

// SetTCPHandler sets the function that decides on every incoming TCP
// connection that no listener owns. It runs on its own goroutine per SYN.
// With no handler, connections are refused with a RST.
func (s *Stack) SetTCPHandler(h func(*TCPRequest)) {
	s.mu.Lock()
	s.tcpHandler = h
	s.mu.Unlock()
}

func (s *Stack) handleTCP(r *tcp.ForwarderRequest) {
	s.mu.RLock()
	h := s.tcpHandler
	s.mu.RUnlock()
	req := &TCPRequest{r: r}
	if h == nil {
		req.Reject()
		return
	}
	h(req)
}

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip, port)
}

// LocalAddr is the tunnel-side address the peer connected to.
func (q *TCPRequest) LocalAddr() netip.AddrPort {
	id := q.r.ID()
	return addrPort(id.LocalAddress, id.LocalPort)
}

// RemoteAddr is the remote peer's address.
func (q *TCPRequest) RemoteAddr() netip.AddrPort {
	id := q.r.ID()
	return addrPort(id.RemoteAddress, id.RemotePort)
}

var errDone = errors.New("TCP request already answered")

// Accept completes the handshake and returns the connection.
func (q *TCPRequest) Accept() (net.Conn, error) {
	var (
		c   net.Conn
		err = errDone
	)
	q.once.Do(func() {
		var wq waiter.Queue
		ep, terr := q.r.CreateEndpoint(&wq)
		if terr != nil {
			q.r.Complete(true)
			err = fmt.Errorf("accepting %s: %s", q.RemoteAddr(), terr)
			return
		}
		q.r.Complete(false)
		ep.SocketOptions().SetKeepAlive(true)
		idle := tcpip.KeepaliveIdleOption(60e9)
		intvl := tcpip.KeepaliveIntervalOption(15e9)
		ep.SetSockOpt(&idle)
		ep.SetSockOpt(&intvl)
		ep.SetSockOptInt(tcpip.KeepaliveCountOption, 4)
		c, err = gonet.NewTCPConn(&wq, ep), nil
	})
	return c, err
}

// Reject refuses the connection with a RST.
func (q *TCPRequest) Reject() {
	q.once.Do(func() { q.r.Complete(true) })
}
