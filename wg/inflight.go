package wg

import (
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// wireguard-go holds every packet on its way through in a message buffer
// of its own, 64 KiB whatever the MTU, queued between its stages with
// room for 1,024 batches of up to 128 packets. Nothing bounds how many it
// holds but the TCP windows of the flows it carries: with 50 bulk TCP
// connections the current wireguard-go as a kernel-TUN client held about
// 500 MB, and vpnfwd, under its soft memory limit (128 MiB), had a live
// heap of 115 MB of such buffers: the garbage collector ran without pause
// (888 collections in a minute), each one emptied wireguard-go's buffer
// pools, and every packet then allocated and zeroed 64 KiB afresh (perf:
// the page allocator, scavenger and TLB flushes on top, ChaCha20 at
// 3.5 %). Throughput fell to 0.3-0.5x the reference's.
//
// inflight bounds the packets wireguard-go holds in each direction: from
// the TUN side to the UDP socket (outbound) and from the UDP socket to
// the TUN side (inbound). A read from the side a direction starts at
// waits while that direction is at its limit, so the packets wait where
// they cost their own size (gVisor's queue, the TUN's, the UDP socket's
// buffer) and TCP sees the queue as it would at a router. What wireguard-go
// drops by itself (a packet for no peer, a keepalive, a message that
// fails to decrypt) is never counted back: if a direction at its limit
// sees nothing leave for staleAfter, its count starts again from zero.
type inflight struct {
	limit int64
	stale time.Duration
	n     atomic.Int64
	done  chan struct{} // a token whenever packets left
}

// inflightLimit is the bound per direction: 128 packets (8 MiB of
// wireguard-go's buffers, 180 KB of payload at MTU 1420, about 0.7 ms at
// 2 Gbit/s) and one read's batch over it. Measured in one run of
// bench/whole-path.sh: 128 took 50 connections from 0.46x/0.40x of the
// reference (down/up) to 1.00x/1.16x and the tun mode from 0.37x/0.30x to
// 1.02x/1.08x; 512 left the upload's collector busy (0.94x, twice the
// CPU per GB).
const inflightLimit = 128

// staleAfter is how long a direction at its limit may see nothing leave
// before its count is taken to be wrong.
const staleAfter = 5 * time.Millisecond

func newInflight(limit int, stale time.Duration) *inflight {
	return &inflight{limit: int64(limit), stale: stale, done: make(chan struct{}, 1)}
}

// wait blocks while the direction is at its limit.
func (f *inflight) wait() {
	if f.n.Load() < f.limit {
		return
	}
	t := time.NewTimer(f.stale)
	defer t.Stop()
	for f.n.Load() >= f.limit {
		select {
		case <-f.done:
		case <-t.C:
			f.n.Store(0) // nothing left for stale: the count was wrong
			return
		}
	}
}

func (f *inflight) add(k int) { f.n.Add(int64(k)) }

func (f *inflight) left(k int) {
	if f.n.Add(-int64(k)) < 0 {
		f.n.Store(0)
	}
	select {
	case f.done <- struct{}{}:
	default:
	}
}

// boundedTUN counts the packets wireguard-go reads from the TUN side out
// and those it writes to it in.
type boundedTUN struct {
	tun.Device
	out, in *inflight
}

func (t *boundedTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	t.out.wait()
	n, err := t.Device.Read(bufs, sizes, offset)
	t.out.add(n)
	return n, err
}

func (t *boundedTUN) Write(bufs [][]byte, offset int) (int, error) {
	n, err := t.Device.Write(bufs, offset)
	t.in.left(len(bufs)) // written or dropped, wireguard-go has them back
	return n, err
}

// boundedBind counts the datagrams wireguard-go sends out and receives in.
// Wrapped, the standard bind no longer starts wireguard-go's route
// listener (it checks for *conn.StdNetBind), which forgets a peer's cached
// source address when the host's routes change; wireguard-go forgets it
// anyway when a handshake goes unanswered, and vpnfwd's liveness check
// forces one within seconds of the tunnel going quiet.
type boundedBind struct {
	conn.Bind
	out, in *inflight
}

func (b *boundedBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	err := b.Bind.Send(bufs, ep)
	b.out.left(len(bufs))
	return err
}

func (b *boundedBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	for i, fn := range fns {
		fns[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			b.in.wait()
			n, err := fn(packets, sizes, eps)
			b.in.add(n)
			return n, err
		}
	}
	return fns, actual, err
}
