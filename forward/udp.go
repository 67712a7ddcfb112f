package forward

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// udpListener bridges one forwarded UDP port: each remote peer gets its own
// local socket, so the service's replies go back to the right peer.
type udpListener struct {
	b      *Bridge
	pc     net.PacketConn
	target *net.UDPAddr
	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	done   chan struct{}
	once   sync.Once
}

// replyBuf is the largest reply datagram a flow carries back; the tunnel's
// MTU keeps real ones far below it.
const replyBuf = 9000

type udpFlow struct {
	conn *net.UDPConn
	last time.Time
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
	l := &udpListener{b: b, pc: pc, target: addr, flows: map[netip.AddrPort]*udpFlow{}, done: make(chan struct{})}
	b.wg.Add(1)
	go l.serve()
	return l, nil
}

func (l *udpListener) close() {
	l.once.Do(func() {
		close(l.done)
		l.pc.Close()
		l.mu.Lock()
		for k, f := range l.flows {
			f.conn.Close()
			delete(l.flows, k)
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
		peer := addrPortOf(from)
		f, err := l.flow(peer)
		if err != nil {
			l.b.log.Debug("UDP flow", "peer", peer.String(), "err", err)
			continue
		}
		l.b.udpPackets.Add(1)
		if k, err := f.conn.Write(buf[:n]); err == nil {
			l.b.bytesIn.Add(uint64(k))
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
// the table is full).
func (l *udpListener) flow(peer netip.AddrPort) (*udpFlow, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if f, ok := l.flows[peer]; ok {
		f.last = now
		return f, nil
	}
	if len(l.flows) >= l.b.cfg.MaxUDPFlows {
		var oldest netip.AddrPort
		var t time.Time
		for k, f := range l.flows {
			if t.IsZero() || f.last.Before(t) {
				oldest, t = k, f.last
			}
		}
		l.flows[oldest].conn.Close()
		delete(l.flows, oldest)
	}
	var laddr *net.UDPAddr
	if src := l.b.localAddr(peer.Addr()); src.IsValid() {
		laddr = &net.UDPAddr{IP: src.AsSlice()}
	}
	conn, err := net.DialUDP("udp", laddr, l.target)
	if err != nil {
		return nil, err
	}
	f := &udpFlow{conn: conn, last: now}
	l.flows[peer] = f
	l.b.udpFlows.Add(1)
	l.b.wg.Add(1)
	go l.replies(peer, f)
	return f, nil
}

// replies carries the service's answers back to peer until the flow idles.
func (l *udpListener) replies(peer netip.AddrPort, f *udpFlow) {
	defer l.b.wg.Done()
	defer l.b.udpFlows.Add(-1)
	to := net.UDPAddrFromAddrPort(peer)
	buf := make([]byte, replyBuf)
	idle := l.b.cfg.UDPIdle
	for {
		f.conn.SetReadDeadline(time.Now().Add(idle))
		n, err := f.conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				l.mu.Lock()
				if time.Since(f.last) < idle && l.flows[peer] == f {
					l.mu.Unlock()
					continue
				}
				if l.flows[peer] == f {
					delete(l.flows, peer)
				}
				l.mu.Unlock()
			}
			f.conn.Close()
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
