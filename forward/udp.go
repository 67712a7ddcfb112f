package forward

import (
	"container/list"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// udpListener bridges one forwarded UDP port: each remote peer gets its own
// local socket, so the service's replies go back to the right peer. The
// flow table is bounded overall and per remote address; a new peer over a
// bound replaces the flow idle the longest.
type udpListener struct {
	b      *Bridge
	pc     net.PacketConn
	target *net.UDPAddr
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	newFlows *rate.Limiter                    // flows opened per second
	flows    map[netip.AddrPort]*list.Element // of *udpFlow
	lru      *list.List                       // most recently used first
	bySource map[netip.Addr]int
}

var errFlowRate = errors.New("too many new UDP peers per second; datagram dropped")

// replyBuf is the largest reply datagram a flow carries back; the tunnel's
// MTU keeps real ones far below it.
const replyBuf = 9000

type udpFlow struct {
	peer netip.AddrPort
	conn *net.UDPConn
	last time.Time // guarded by the listener's mu
}

func (b *Bridge) listenUDP(port, target uint16) (*udpListener, error) {
	addr, err := net.ResolveUDPAddr("udp", b.target(target))
	if err != nil {
		return nil, err
	}
	pc, err := b.in.ListenUDP(netip.AddrPortFrom(netip.Addr{}, port))
	if err != nil {
		return nil, err
	}
	l := &udpListener{b: b, pc: pc, target: addr, done: make(chan struct{}),
		newFlows: rate.NewLimiter(rate.Limit(b.cfg.NewUDPFlowsPerSecond), b.cfg.NewUDPFlowsPerSecond),
		flows:    map[netip.AddrPort]*list.Element{}, lru: list.New(), bySource: map[netip.Addr]int{}}
	b.wg.Add(1)
	go l.serve()
	return l, nil
}

func (l *udpListener) close() {
	l.once.Do(func() {
		close(l.done)
		l.pc.Close()
		l.mu.Lock()
		for _, e := range l.flows {
			l.dropLocked(e.Value.(*udpFlow))
		}
		l.mu.Unlock()
	})
}

func (l *udpListener) serve() {
	defer l.b.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := l.pc.ReadFrom(buf)
		if err != nil {
			select {
			case <-l.done:
			default:
				l.b.log.Warn("UDP listener stopped", "err", err)
			}
			return
		}
		l.deliver(addrPortOf(from), buf[:n])
	}
}

// deliver passes one datagram from peer to the service on the peer's flow.
// A flow whose socket died (closed under it) is replaced once.
func (l *udpListener) deliver(peer netip.AddrPort, pkt []byte) {
	defer l.b.contain("UDP datagram", peer)
	for try := 0; try < 2; try++ {
		f, err := l.flow(peer)
		if err != nil {
			l.b.log.Debug("UDP flow", "peer", peer.String(), "err", err)
			return
		}
		l.b.udpPackets.Add(1)
		k, err := f.conn.Write(pkt)
		switch {
		case err == nil:
			l.b.bytesIn.Add(uint64(k))
			return
		case errors.Is(err, syscall.ECONNREFUSED):
			return // the service is down; it may come back on this socket
		case errors.Is(err, net.ErrClosed):
			l.drop(f)
		default:
			l.b.log.Debug("UDP to the service", "peer", peer.String(), "err", err)
			return
		}
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// flow returns the peer's flow, opening one (and evicting the idlest when
// a bound is reached).
func (l *udpListener) flow(peer netip.AddrPort) (*udpFlow, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if e, ok := l.flows[peer]; ok {
		f := e.Value.(*udpFlow)
		f.last = now
		l.lru.MoveToFront(e)
		return f, nil
	}
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	// Opening a flow costs a socket and a goroutine: junk from random
	// sources must not make us spend them faster than this.
	if !l.newFlows.Allow() {
		l.b.udpRefused.Add(1)
		return nil, errFlowRate
	}
	if l.bySource[peer.Addr()] >= l.b.cfg.MaxUDPFlowsPerSource {
		for e := l.lru.Back(); e != nil; e = e.Prev() {
			if f := e.Value.(*udpFlow); f.peer.Addr() == peer.Addr() {
				l.dropLocked(f)
				break
			}
		}
	}
	if len(l.flows) >= l.b.cfg.MaxUDPFlows {
		l.dropLocked(l.lru.Back().Value.(*udpFlow))
	}
	var laddr *net.UDPAddr
	if src := l.b.localAddr(peer.Addr()); src.IsValid() {
		laddr = &net.UDPAddr{IP: src.AsSlice()}
	}
	conn, err := net.DialUDP("udp", laddr, l.target)
	if err != nil {
		return nil, err
	}
	f := &udpFlow{peer: peer, conn: conn, last: now}
	l.flows[peer] = l.lru.PushFront(f)
	l.bySource[peer.Addr()]++
	l.b.udpFlows.Add(1)
	l.b.wg.Add(1)
	go l.replies(f)
	return f, nil
}

// drop removes f from the table (if still there) and closes its socket.
func (l *udpListener) drop(f *udpFlow) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLocked(f)
}

func (l *udpListener) dropLocked(f *udpFlow) {
	f.conn.Close()
	e, ok := l.flows[f.peer]
	if !ok || e.Value.(*udpFlow) != f {
		return
	}
	l.lru.Remove(e)
	delete(l.flows, f.peer)
	if l.bySource[f.peer.Addr()]--; l.bySource[f.peer.Addr()] <= 0 {
		delete(l.bySource, f.peer.Addr())
	}
	l.b.udpFlows.Add(-1)
}

// replies carries the service's answers back to the peer until the flow
// idles or is dropped. A refusal (the service restarting) does not end
// the flow: the socket stays usable once the service is back.
func (l *udpListener) replies(f *udpFlow) {
	defer l.b.wg.Done()
	defer l.drop(f)
	defer l.b.contain("UDP flow", f.peer)
	to := net.UDPAddrFromAddrPort(f.peer)
	buf := make([]byte, replyBuf)
	idle := l.b.cfg.UDPIdle
	for {
		f.conn.SetReadDeadline(time.Now().Add(idle))
		n, err := f.conn.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				l.mu.Lock()
				busy := time.Since(f.last) < idle
				l.mu.Unlock()
				if busy {
					continue
				}
				return
			case errors.Is(err, syscall.ECONNREFUSED):
				continue
			}
			return
		}
		l.mu.Lock()
		f.last = time.Now()
		l.mu.Unlock()
		if k, err := l.pc.WriteTo(buf[:n], to); err == nil {
			l.b.bytesOut.Add(uint64(k))
		}
	}
}
