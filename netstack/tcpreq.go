package netstack

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCPRequest is an incoming connection whose SYN has arrived but whose
// handshake has not been answered yet. The handler must call exactly one of
// Accept, Reject or Drop; a second call is ignored.
//
// gVisor's ForwarderRequest is borrowed: its segment is released by
// Complete, after which ID() dereferences freed memory. Everything a
// handler may ask for (the addresses) is copied out when the request is
// made, and the request is never touched after Complete.
type TCPRequest struct {
	r             *tcp.ForwarderRequest
	local, remote netip.AddrPort
	adm           *admission
	slot          *list.Element // our place among the pending, if admitted
	wq            *waiter.Queue // set while the handshake runs (abortable)
	aborted       bool          // evicted to make room
	once          sync.Once
}

// answer runs f once, as the request's only answer, and gives back its
// place among the pending handshakes.
func (q *TCPRequest) answer(f func()) {
	q.once.Do(func() {
		f()
		q.r = nil
		if q.slot != nil {
			q.adm.done(q)
		}
	})
}

// SetTCPHandler sets the function that decides on every incoming TCP
// connection that no listener owns. It runs on its own goroutine per SYN,
// and a panic in it is recovered (the connection is refused). With no
// handler, connections are refused with a RST.
func (s *Stack) SetTCPHandler(h func(*TCPRequest)) {
	s.mu.Lock()
	s.tcpHandler = h
	s.mu.Unlock()
}

// handleTCP runs on the goroutine gVisor starts for each SYN.
func (s *Stack) handleTCP(r *tcp.ForwarderRequest) {
	id := r.ID() // valid until Complete: copy it out now
	req := &TCPRequest{
		r:      r,
		local:  addrPort(id.LocalAddress, id.LocalPort),
		remote: addrPort(id.RemoteAddress, id.RemotePort),
		adm:    s.adm,
	}
	if !s.adm.admit(req) {
		// Over the limit: ignore the SYN, as a full SYN queue would. The
		// peer retries; a flood gains nothing.
		req.Drop()
		return
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic handling a tunnel connection; refused it", "peer", req.remote.String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			req.Reject()
		}
	}()
	s.mu.RLock()
	h := s.tcpHandler
	s.mu.RUnlock()
	if h == nil {
		req.Reject()
		return
	}
	h(req)
	// A handler that returned without answering would leave the request
	// in gVisor's in-flight table for good.
	req.Reject()
}

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip, port)
}

// LocalAddr is the tunnel-side address the peer connected to.
func (q *TCPRequest) LocalAddr() netip.AddrPort { return q.local }

// RemoteAddr is the remote peer's address.
func (q *TCPRequest) RemoteAddr() netip.AddrPort { return q.remote }

// Crowded reports whether handshakes are piling up: another one from the
// same source is pending, or many are pending overall. A handler should
// then not spend anything (a local connection) on this request before its
// handshake completes: under a SYN flood most never will.
func (q *TCPRequest) Crowded() bool { return q.adm.crowded(q.remote.Addr()) }

var errDone = errors.New("TCP request already answered")

// Accept completes the handshake (blocking until the peer's ACK, or until
// the SYN-ACK retries run out) and returns the connection.
func (q *TCPRequest) Accept() (net.Conn, error) {
	var (
		c   net.Conn
		err = errDone
	)
	q.answer(func() {
		wq, stop := q.adm.handshaking(q)
		start := time.Now()
		ep, terr := q.r.CreateEndpoint(wq)
		handshake := time.Since(start)
		stop()
		// The handshake is over either way: release the request. Nothing
		// of it is used after this line.
		q.r.Complete(false)
		if terr != nil {
			q.adm.handshakeFailed(q.remote.Addr())
			err = fmt.Errorf("accepting %s: %s", q.remote, terr)
			return
		}
		ep.SocketOptions().SetKeepAlive(true)
		idle := tcpip.KeepaliveIdleOption(60e9)
		intvl := tcpip.KeepaliveIntervalOption(15e9)
		ep.SetSockOpt(&idle)
		ep.SetSockOpt(&intvl)
		ep.SetSockOptInt(tcpip.KeepaliveCountOption, 4)
		cc := congestionControlFor(handshake)
		ep.SetSockOpt(&cc)
		c, err = newSizedConn(wq, ep), nil
	})
	return c, err
}

// Reject refuses the connection with a RST.
func (q *TCPRequest) Reject() {
	q.answer(func() { q.r.Complete(true) })
}

// Drop ignores the SYN without an answer (the peer will retry).
func (q *TCPRequest) Drop() {
	q.answer(func() { q.r.Complete(false) })
}
