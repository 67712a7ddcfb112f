package netstack

import (
	"os"

	"golang.zx2c4.com/wireguard/tun"
)

// batch is how many packets one Read hands to wireguard-go at most.
const batch = 128

// TUN returns the stack as a tun.Device for device.NewDevice. Closing the
// device closes the stack.
func (s *Stack) TUN() tun.Device { return tunDevice{s} }

type tunDevice struct{ s *Stack }

// wake is called by the link endpoint when outbound packets are queued; it
// wakes a blocked Read.
func (s *Stack) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (t tunDevice) File() *os.File           { return nil }
func (t tunDevice) MTU() (int, error)        { return t.s.cfg.MTU, nil }
func (t tunDevice) Name() (string, error)    { return "vpnfwd", nil }
func (t tunDevice) Events() <-chan tun.Event { return t.s.events }
func (t tunDevice) BatchSize() int           { return batch }
func (t tunDevice) Close() error             { return t.s.Close() }

// Read blocks until the stack has at least one packet to send into the
// tunnel, then returns as many as are queued (up to len(bufs) and
// sendBurst), large TCP segments cut to the MTU. wireguard-go calls it
// from one goroutine.
func (t tunDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		pkts := t.s.link.take(t.s.taken[:0], min(len(bufs), sendBurst(int(t.s.link.MTU()))))
		n := 0
		for i, pkt := range pkts {
			n += writeOut(pkt, bufs[n:], sizes[n:], offset)
			pkt.DecRef()
			pkts[i] = nil
		}
		t.s.taken = pkts[:0]
		if n > 0 {
			return n, nil
		}
		if len(pkts) > 0 {
			continue // all dropped as malformed
		}
		select {
		case <-t.s.notify:
		case <-t.s.closed:
			return 0, os.ErrClosed
		}
	}
}

// Write injects packets decrypted by wireguard-go into the stack, a batch
// at a time (so that GRO can merge a flow's segments).
func (t tunDevice) Write(bufs [][]byte, offset int) (int, error) {
	t.s.link.deliver(bufs, offset)
	return len(bufs), nil
}
