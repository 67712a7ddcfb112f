package netstack

import (
	"errors"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// FillFrom moves what the local socket src receives straight into the
// connection's send queue, until src's end of stream (nil) or an error,
// calling moved (if not nil) with every count taken. gVisor reads the
// socket into its own segment memory, only as much as its send buffer has
// room for: no copy buffer of ours in between (one copy of every byte
// less than Read into a buffer and Write from it), and nothing of ours
// held while a slow peer keeps the buffer full — the rest waits in the
// local socket, where the kernel's flow control holds the service back.
// Waits for the socket honour its read deadline.
func (c *sizedConn) FillFrom(src syscall.Conn, moved func(int)) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	entry, room := waiter.NewChannelEntry(waiter.WritableEvents)
	c.wq.EventRegister(&entry)
	defer c.wq.EventUnregister(&entry)
	r := &sockReader{rc: rc}
	var total int64
	for {
		if err := r.wait(); err != nil {
			return total, err
		}
		for r.ready > 0 {
			n, terr := c.ep.Write(r, tcpip.WriteOptions{})
			if n > 0 {
				total += n
				c.wrote(int(n))
				if moved != nil {
					moved(int(n))
				}
			}
			if r.err != nil {
				return total, r.err
			}
			switch terr.(type) {
			case nil:
			case *tcpip.ErrWouldBlock:
				// Full: wait for gVisor to wake writers (when half of it
				// has drained, or the connection ends).
				<-room
			default:
				return total, &net.OpError{Op: "write", Net: "tcp", Err: errors.New(terr.String())}
			}
		}
		if r.eof {
			return total, nil
		}
	}
}

// sockReader is a tcpip.Payloader over a non-blocking local socket: it
// offers what the socket held when last asked (ready) and ends gVisor's
// copy (io.EOF) when that is taken or the socket has no more for now.
type sockReader struct {
	rc    syscall.RawConn
	ready int   // bytes the socket holds, as of the last wait or read
	eof   bool  // the socket's stream has ended
	err   error // a read failed: the stream is broken
}

// Len is what the socket holds: gVisor takes at most this much.
func (r *sockReader) Len() int { return r.ready }

func (r *sockReader) Read(p []byte) (int, error) {
	if r.ready == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	if err := r.rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), p[:min(len(p), r.ready)])
		return true
	}); err != nil {
		rerr = err
	}
	switch {
	case rerr == unix.EAGAIN || rerr == unix.EINTR:
		r.ready = 0
		return 0, io.EOF
	case rerr != nil:
		r.ready, r.err = 0, rerr
		return 0, rerr
	case n == 0:
		r.ready, r.eof = 0, true
		return 0, io.EOF
	}
	r.ready -= n
	return n, nil
}

// wait blocks, holding no buffer, until the socket has bytes (ready) or
// its stream has ended (eof).
func (r *sockReader) wait() error {
	var werr error
	err := r.rc.Read(func(fd uintptr) bool {
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			werr = err
			return true
		}
		if n > 0 {
			r.ready = n
			return true
		}
		// Nothing queued: the end of the stream, or wait for more.
		var b [1]byte
		m, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false
		case err != nil:
			werr = err
		case m == 0:
			r.eof = true
		default:
			r.ready = m // arrived since the ioctl; the next read asks again
		}
		return true
	})
	if err != nil {
		return err
	}
	return werr
}
