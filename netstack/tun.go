package netstack

import (
	"os"
	"syscall"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// batch is how many packets one Read hands to wireguard-go at most.
const batch = 128

// TUN returns the stack as a tun.Device for device.NewDevice. Closing the
// device closes the stack.
func (s *Stack) TUN() tun.Device { return tunDevice{s} }

type tunDevice struct{ s *Stack }

// WriteNotify is called by the channel endpoint when an outbound packet is
// queued; it wakes a blocked Read.
func (s *Stack) WriteNotify() {
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
// tunnel, then returns as many as are queued (up to len(bufs)).
func (t tunDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		n := 0
		for n < len(bufs) {
			pkt := t.s.ep.Read()
			if pkt == nil {
				break
			}
			view := pkt.ToView()
			pkt.DecRef()
			m, _ := view.Read(bufs[n][offset:])
			view.Release()
			sizes[n] = m
			n++
		}
		if n > 0 {
			return n, nil
		}
		select {
		case <-t.s.notify:
		case <-t.s.closed:
			return 0, os.ErrClosed
		}
	}
}

// Write injects packets decrypted by wireguard-go into the stack.
func (t tunDevice) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		pkt := b[offset:]
		if len(pkt) == 0 {
			continue
		}
		pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
		switch pkt[0] >> 4 {
		case 4:
			t.s.ep.InjectInbound(header.IPv4ProtocolNumber, pb)
		case 6:
			t.s.ep.InjectInbound(header.IPv6ProtocolNumber, pb)
		default:
			pb.DecRef()
			return 0, syscall.EAFNOSUPPORT
		}
		pb.DecRef()
	}
	return len(bufs), nil
}
