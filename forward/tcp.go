package forward

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
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

// HandleTCP decides on an incoming tunnel connection: it dials the local
// service first and completes the tunnel handshake only if that worked, so
// a remote peer sees a refusal (RST) when the service is down.
func (b *Bridge) HandleTCP(req TCPRequest) {
	target, ok := b.route(req.LocalAddr().Port())
	if !ok {
		req.Reject()
		return
	}
	defer b.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DialTimeout)
	var d net.Dialer
	if src := b.localAddr(req.RemoteAddr().Addr()); src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	local, err := d.DialContext(ctx, "tcp", b.target(target))
	cancel()
	if err != nil {
		b.tcpRefused.Add(1)
		b.log.Debug("local service refused", "target", b.target(target), "peer", req.RemoteAddr().String(), "err", err)
		req.Reject()
		return
	}
	remote, err := req.Accept()
	if err != nil {
		local.Close()
		return
	}
	b.tcpOpen.Add(1)
	b.tcpTotal.Add(1)
	defer b.tcpOpen.Add(-1)
	splice(remote, local, &b.bytesIn, &b.bytesOut)
}

type closeWriter interface{ CloseWrite() error }

// splice copies both ways until both directions are done, passing each
// half-close on, then closes both ends. in counts a->b bytes, out b->a.
func splice(a, b net.Conn, in, out *atomic.Uint64) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(b, a, in) }()
	go func() { defer wg.Done(); pipe(a, b, out) }()
	wg.Wait()
	a.Close()
	b.Close()
}

func pipe(dst, src net.Conn, n *atomic.Uint64) {
	err := copyAdaptive(dst, src, n)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
		return
	}
	// An error one way ends both: close so the other copy returns too.
	dst.Close()
	src.Close()
}

// copyAdaptive copies src to dst until EOF (nil error) or an error.
func copyAdaptive(dst, src net.Conn, count *atomic.Uint64) error {
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
