package forward

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// bufSize bounds memory per bridged connection: one buffer each way.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// HandleTCP decides on an incoming tunnel connection: it dials the local
// service first and completes the tunnel handshake only if that worked, so
// a remote peer sees a refusal (RST) when the service is down.
func (b *Bridge) HandleTCP(req TCPRequest) {
	target, ok := b.route(req.LocalAddr().Port())
	if !ok {
		req.Reject()
		return
	}
	b.wg.Add(1)
	defer b.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DialTimeout)
	var d net.Dialer
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
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	_, err := io.CopyBuffer(countWriter{dst, n}, src, *bp)
	if cw, ok := dst.(closeWriter); ok && (err == nil || errors.Is(err, io.EOF)) {
		cw.CloseWrite()
		return
	}
	// An error one way ends both: close so the other copy returns too.
	dst.Close()
	src.Close()
}

type countWriter struct {
	w net.Conn
	n *atomic.Uint64
}

func (c countWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	if c.n != nil {
		c.n.Add(uint64(k))
	}
	return k, err
}
