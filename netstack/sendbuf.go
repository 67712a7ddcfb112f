package netstack

import (
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/waiter"
)

// A bridged connection's send buffer follows what the connection moves.
// gVisor sizes it from the congestion window, which grows on every ACK
// even while the peer's receive window is what holds the connection back:
// a peer downloading at 1 Mbit/s ends up with 0.5–1 MiB of our data
// queued for it. Measured (bench/whole-path.sh, 200 peers downloading at
// 1 Mbit/s each): 213 MB over idle with gVisor's sizing, 1.3 CPUs of
// garbage collection against the soft memory limit. Instead, every
// sendBufEvery of writing the buffer is set to sendBufRTTs round trips of
// what the connection took in that time (its bandwidth-delay product with
// room to grow: a connection held back by its buffer sees it tripled each
// time), never below sendBufMin, never above the stack's maximum.
const (
	sendBufEvery = 100 * time.Millisecond
	sendBufRTTs  = 3
	sendBufMin   = 64 << 10
)

// sizedConn is an accepted connection whose send buffer vpnfwd sizes.
type sizedConn struct {
	*gonet.TCPConn
	wq *waiter.Queue
	ep tcpip.Endpoint

	mu      sync.Mutex
	since   time.Time
	written int64
}

func newSizedConn(wq *waiter.Queue, ep tcpip.Endpoint) *sizedConn {
	// It starts small (a fill at gVisor's default of 1 MiB per peer is
	// what a crowd of slow peers costs at once) and grows from the first
	// sendBufEvery on.
	ep.SocketOptions().SetSendBufferSize(sendBufMin, true)
	return &sizedConn{TCPConn: gonet.NewTCPConn(wq, ep), wq: wq, ep: ep, since: time.Now()}
}

func (c *sizedConn) Write(b []byte) (int, error) {
	n, err := c.TCPConn.Write(b)
	c.wrote(n)
	return n, err
}

// wrote counts n bytes taken and resizes the send buffer every
// sendBufEvery.
func (c *sizedConn) wrote(n int) {
	rate := -1.0
	c.mu.Lock()
	c.written += int64(n)
	if d := time.Since(c.since); d >= sendBufEvery {
		rate = float64(c.written) / d.Seconds()
		c.since, c.written = c.since.Add(d), 0
	}
	c.mu.Unlock()
	if rate >= 0 {
		c.resize(rate)
	}
}

// resize sets the send buffer for a connection that took rate bytes/s.
func (c *sizedConn) resize(rate float64) {
	var info tcpip.TCPInfoOption
	if c.ep.GetSockOpt(&info) != nil {
		return
	}
	_, top := c.ep.SocketOptions().SendBufferLimits()
	// notify: the writer blocked on a full buffer wakes if it grew (and
	// gVisor's own sizing stays off for this connection).
	c.ep.SocketOptions().SetSendBufferSize(sendBufFor(rate, info.RTT, top), true)
}

// sendBufFor is the send buffer for a connection that took rate bytes/s
// with a smoothed round trip of rtt (at least 1 ms counted), at most top.
func sendBufFor(rate float64, rtt time.Duration, top int64) int64 {
	want := int64(sendBufRTTs * rate * max(rtt, time.Millisecond).Seconds())
	return min(max(want, sendBufMin), top)
}
