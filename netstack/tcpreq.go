package netstack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
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
	admitted      bool
	once          sync.Once
}

// answer runs f once, as the request's only answer, and gives back its
// place among the pending handshakes.
func (q *TCPRequest) answer(f func()) {
	q.once.Do(func() {
		f()
		q.r = nil
		if q.admitted {
			q.adm.done(q.remote.Addr())
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
	if !s.adm.admit(req.remote.Addr()) {
		// Over the limit: ignore the SYN, as a full SYN queue would. The
		// peer retries; a flood gains nothing.
		req.Drop()
		return
	}
	req.admitted = true
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
		var wq waiter.Queue
		ep, terr := q.r.CreateEndpoint(&wq)
		// The handshake is over either way: release the request. Nothing
		// of it is used after this line.
		q.r.Complete(false)
		if terr != nil {
			q.adm.failed.Add(1)
			err = fmt.Errorf("accepting %s: %s", q.remote, terr)
			return
		}
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
	q.answer(func() { q.r.Complete(true) })
}

// Drop ignores the SYN without an answer (the peer will retry).
func (q *TCPRequest) Drop() {
	q.answer(func() { q.r.Complete(false) })
}

// admission bounds the handshakes in progress, overall and per source
// address: each holds a goroutine and a half-open endpoint until the peer
// answers or the SYN-ACK retries run out.
type admission struct {
	max, perSource int
	mu             sync.Mutex
	pending        int
	bySource       map[netip.Addr]int
	dropped        atomic.Uint64 // SYNs ignored for being over a limit
	failed         atomic.Uint64 // handshakes that never completed
}

// crowdedAt is how many pending handshakes make the stack "crowded".
const crowdedAt = 16

func newAdmission(max, perSource int) *admission {
	return &admission{max: max, perSource: perSource, bySource: map[netip.Addr]int{}}
}

func (a *admission) admit(src netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending >= a.max || a.bySource[src] >= a.perSource {
		a.dropped.Add(1)
		return false
	}
	a.pending++
	a.bySource[src]++
	return true
}

func (a *admission) done(src netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending--
	if a.bySource[src]--; a.bySource[src] <= 0 {
		delete(a.bySource, src)
	}
}

func (a *admission) crowded(src netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending > crowdedAt || a.bySource[src] > 1
}

// Stats are the stack's counters of incoming TCP handshakes.
type Stats struct {
	PendingHandshakes int    // SYNs received, handshake not finished
	DroppedSYN        uint64 // SYNs ignored for being over a limit
	FailedHandshakes  uint64 // accepted SYNs whose peer never completed (RST, timeout)
}

// Stats returns the handshake counters.
func (s *Stack) Stats() Stats {
	s.adm.mu.Lock()
	p := s.adm.pending
	s.adm.mu.Unlock()
	return Stats{PendingHandshakes: p, DroppedSYN: s.adm.dropped.Load(), FailedHandshakes: s.adm.failed.Load()}
}
