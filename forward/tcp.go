package forward

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// Copy buffers: an idle connection waits in Read holding only a small
// buffer; one that fills it moves to a large pooled buffer for bulk, and
// gives it back as soon as a read comes back small. Memory per idle
// connection stays at 2 x smallBuf.
const (
	smallBuf = 2 << 10
	largeBuf = 64 << 10
)

var largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// HandleTCP decides on an incoming tunnel connection. Normally it dials
// the local service first and completes the tunnel handshake only if that
// worked, so a remote peer sees a refusal (RST) when the service is down.
// When handshakes pile up (req.Crowded: a SYN flood, a scan) it completes
// the handshake first and dials only for peers that really connected, so
// a flood never becomes a flood of local connections. A panic here costs
// this connection only.
func (b *Bridge) HandleTCP(req TCPRequest) {
	peer := req.RemoteAddr()
	defer b.contain("TCP connection", peer)
	target, ok := b.route(req.LocalAddr().Port())
	if !ok {
		req.Reject()
		return
	}
	defer b.wg.Done()
	var local net.Conn
	if !req.Crowded() {
		var err error
		if local, err = b.dialLocal(peer, target); err != nil {
			req.Reject()
			return
		}
	}
	remote, err := req.Accept()
	if err != nil {
		if local != nil {
			local.Close()
		}
		return
	}
	if local == nil {
		if local, err = b.dialLocal(peer, target); err != nil {
			remote.Close()
			return
		}
	}
	c := &bridged{peer: peer.Addr(), remote: remote, local: local}
	if !b.conns.add(c) {
		c.close()
		return
	}
	b.tcpOpen.Add(1)
	b.tcpTotal.Add(1)
	defer b.tcpOpen.Add(-1)
	defer b.conns.remove(c)
	splice(remote, local, &b.bytesIn, &b.bytesOut, c.touch)
}

// dialLocal connects to the service for peer, counting a refusal.
func (b *Bridge) dialLocal(peer netip.AddrPort, target uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	if src := b.localAddr(peer.Addr()); src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	local, err := d.DialContext(ctx, "tcp", b.target(target))
	if err != nil {
		b.tcpRefused.Add(1)
		b.log.Debug("local service refused", "target", b.target(target), "peer", peer.String(), "err", err)
	}
	return local, err
}

type closeWriter interface{ CloseWrite() error }

// splice copies both ways until both directions are done, passing each
// half-close on, then closes both ends. in counts a->b bytes, out b->a;
// touch (may be nil) hears that bytes moved.
func splice(a, b net.Conn, in, out *atomic.Uint64, touch func()) {
	var wg sync.WaitGroup
	wg.Add(2)
	// A panic in a copy ends this connection, not the process.
	contained := func(f func()) {
		defer wg.Done()
		defer func() {
			if recover() != nil {
				a.Close()
				b.Close()
			}
		}()
		f()
	}
	go contained(func() { pipe(b, a, in, touch) })
	go contained(func() { pipe(a, b, out, touch) })
	wg.Wait()
	a.Close()
	b.Close()
}

func pipe(dst, src net.Conn, n *atomic.Uint64, touch func()) {
	err := copyAdaptive(dst, src, n, touch)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
		return
	}
	// An error one way ends both: close so the other copy returns too.
	dst.Close()
	src.Close()
}

// filler is a connection that takes what a local socket receives
// straight into its send queue (netstack's tunnel connections): no copy
// buffer of ours, and nothing of ours held while a slow peer keeps it full.
type filler interface {
	FillFrom(src syscall.Conn, moved func(int)) (int64, error)
}

// copyAdaptive copies src to dst until EOF (nil error) or an error,
// calling touch (if not nil) whenever bytes moved.
func copyAdaptive(dst, src net.Conn, count *atomic.Uint64, touch func()) error {
	if f, ok := dst.(filler); ok {
		if s, ok := src.(syscall.Conn); ok {
			_, err := f.FillFrom(s, func(n int) {
				if touch != nil {
					touch()
				}
				if count != nil {
					count.Add(uint64(n))
				}
			})
			return err
		}
	}
	small := make([]byte, smallBuf)
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			largePool.Put(large)
		}
	}()
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if touch != nil {
				touch()
			}
			w, werr := dst.Write(buf[:n])
			if count != nil {
				count.Add(uint64(w))
			}
			if werr != nil {
				return werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
		switch {
		case n == len(buf) && large == nil:
			large = largePool.Get().(*[]byte)
			buf = *large
		case n < smallBuf && large != nil:
			largePool.Put(large)
			large, buf = nil, small
		}
	}
}
