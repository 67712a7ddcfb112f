package netstack

import (
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// The link endpoint between gVisor and wireguard-go, built for bulk flows
// the way tailscale's netstack link endpoint is:
//
//   - Outbound, gVisor's TCP hands over segments of up to 64 KiB (host GSO)
//     and tunDevice.Read cuts them into MTU-sized packets straight into
//     wireguard-go's batch (gso.go): one pass through gVisor's TCP, IP and
//     link code per 64 KiB instead of per 1.4 KB.
//   - The outbound queue is a slice under a mutex, taken whole by each Read:
//     no channel operation per packet.
//   - Inbound, a batch from wireguard-go goes through gVisor's GRO, which
//     merges consecutive TCP segments of a flow, so gVisor's TCP receiver
//     handles (and acknowledges) one segment per batch, not one per packet.
//   - Checksums of decrypted packets are not verified again: WireGuard has
//     authenticated them, as the kernel's WireGuard marks them
//     CHECKSUM_UNNECESSARY (drivers/net/wireguard/receive.c).

// gsoMaxSize is the largest TCP segment gVisor hands over: 64 KiB, or
// less when the MTU makes a burst shorter, so that one segment is never
// cut into more packets than sendBurst lets one Read return.
func gsoMaxSize(mtu int) uint32 {
	return uint32(min(1<<16-1, sendBurst(mtu)*(mtu-100))) // MSS >= MTU - IPv6 - TCP with options
}

// sendBurst is how many packets one Read hands to wireguard-go at most.
// wireguard-go sends a run of equal-sized packets to the same peer as one
// UDP GSO message of up to 65,507 bytes, but the kernel cuts up in
// software any GSO packet longer than the device's gso_max_size (64 KiB),
// link-layer header included: 46 WireGuard messages of 1,424 bytes (a
// full segment of gVisor's MSS at MTU 1420) make 65,546 bytes on a veth
// and went out as single datagrams (tcpdump on the client's link), which
// cost this process CPU and gave the VPN server's UDP GRO nothing to merge.
// Within the limit, counting an Ethernet header with a VLAN tag, IPv6
// and UDP (66 bytes) and WireGuard's 32 bytes a message: 45 at MTU 1420.
func sendBurst(mtu int) int {
	const gsoLimit, headers, wgOverhead = 1 << 16, 18 + 40 + 8, 32
	return max(1, min(batch, (gsoLimit-headers)/(mtu+wgOverhead)))
}

// queueLimit bounds the outbound queue, in MTU-sized packets: more than
// wireguard-go takes in a few batches, little enough not to hide
// congestion from TCP (over it, senders wait, then packets are dropped).
const queueLimit = 4096

// roomWait bounds how long WritePackets waits for room: longer than
// wireguard-go takes to drain a few batches, short enough that a stalled
// tunnel cannot hold gVisor's goroutines.
const roomWait = 50 * time.Millisecond

type linkEndpoint struct {
	mtu  atomic.Uint32
	wake func()

	// dispatcher is read without a lock by deliver: gVisor calls Attach(nil)
	// with its stack lock held (NIC removal), and a delivery in progress
	// needs that lock too.
	dispatcher atomic.Pointer[stack.NetworkDispatcher]

	mu     sync.Mutex
	queue  []*stack.PacketBuffer
	queued int // MTU-sized packets in queue
	closed bool
	flows  map[uint32]*flow // TCP connections with packets queued
	room   chan struct{}    // closed (and replaced) when a full queue frees room
	done   chan struct{}    // closed by Close

	// gro is used by Write's one caller at a time (groMu).
	groMu sync.Mutex
	gro   gro.GRO
}

var (
	_ stack.LinkEndpoint = (*linkEndpoint)(nil)
	_ stack.GSOEndpoint  = (*linkEndpoint)(nil)
)

func newLinkEndpoint(mtu int, wake func()) *linkEndpoint {
	e := &linkEndpoint{wake: wake, flows: map[uint32]*flow{}, room: make(chan struct{}), done: make(chan struct{})}
	e.mtu.Store(uint32(mtu))
	e.gro.Init(true)
	return e
}

func (e *linkEndpoint) MTU() uint32                             { return e.mtu.Load() }
func (e *linkEndpoint) SetMTU(mtu uint32)                       { e.mtu.Store(mtu) }
func (e *linkEndpoint) MaxHeaderLength() uint16                 { return 0 }
func (e *linkEndpoint) LinkAddress() tcpip.LinkAddress          { return "" }
func (e *linkEndpoint) SetLinkAddress(tcpip.LinkAddress)        {}
func (e *linkEndpoint) Wait()                                   {}
func (e *linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (e *linkEndpoint) AddHeader(*stack.PacketBuffer)           {}
func (e *linkEndpoint) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (e *linkEndpoint) SetOnCloseAction(func())                 {}
func (e *linkEndpoint) GSOMaxSize() uint32                      { return gsoMaxSize(int(e.mtu.Load())) }
func (e *linkEndpoint) SupportedGSO() stack.SupportedGSO        { return stack.HostGSOSupported }

// Capabilities: inbound checksums are trusted (see above); outbound ones
// are computed here, per packet, for GSO segments and by gVisor otherwise.
func (e *linkEndpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

func (e *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		e.dispatcher.Store(nil)
		return
	}
	e.dispatcher.Store(&d)
}

func (e *linkEndpoint) IsAttached() bool { return e.dispatcher.Load() != nil }

// WritePackets queues gVisor's outbound packets for tunDevice.Read. A
// TCP connection (gVisor's per-connection pkt.Hash) may hold at most its
// share of the queue (queueLimit over the connections with packets in
// it); over it, or with the queue full, the call waits up to roomWait for
// wireguard-go to take some, as a full qdisc holds back the kernel's TCP
// (TCP small queues), then drops what does not fit.
func (e *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	all := pkts.AsSlice()
	n := 0
	var timer *time.Timer
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			if n > 0 {
				return n, nil
			}
			return 0, &tcpip.ErrClosedForSend{}
		}
		added := 0
		var wait chan struct{}
		for ; n < len(all); n++ {
			pkt := all[n]
			segs := segments(pkt)
			f := e.flows[pkt.Hash]
			if e.queued+segs > queueLimit {
				wait = e.room
				break
			}
			if pkt.Hash != 0 && f != nil && f.queued > 0 && f.queued+segs > queueLimit/max(1, len(e.flows)) {
				if f.room == nil {
					f.room = make(chan struct{})
				}
				wait = f.room
				break
			}
			if pkt.Hash != 0 {
				if f == nil {
					f = &flow{}
					e.flows[pkt.Hash] = f
				}
				f.queued += segs
			}
			e.queue = append(e.queue, pkt.IncRef())
			e.queued += segs
			added++
		}
		e.mu.Unlock()
		if added > 0 {
			e.wake()
		}
		if wait == nil {
			return n, nil
		}
		if timer == nil {
			timer = time.NewTimer(roomWait)
			defer timer.Stop()
		}
		select {
		case <-wait:
		case <-e.done:
		case <-timer.C:
			if n == 0 {
				return 0, &tcpip.ErrNoBufferSpace{}
			}
			return n, nil
		}
	}
}

// flow is one TCP connection's share of the queue.
type flow struct {
	queued int           // MTU-sized packets in the queue
	room   chan struct{} // closed when some of them are taken
}

// take moves up to max MTU-sized packets' worth of queued packets into
// dst. A GSO packet is never split across two calls: the first is taken
// whatever its size (at most sendBurst's, by gsoMaxSize).
func (e *linkEndpoint) take(dst []*stack.PacketBuffer, max int) []*stack.PacketBuffer {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, n := 0, 0
	for ; i < len(e.queue); i++ {
		segs := segments(e.queue[i])
		if n+segs > max && n > 0 {
			break
		}
		n += segs
		dst = append(dst, e.queue[i])
		if h := e.queue[i].Hash; h != 0 {
			if f := e.flows[h]; f != nil {
				f.queued -= segs
				if f.room != nil {
					close(f.room)
					f.room = nil
				}
				if f.queued <= 0 {
					delete(e.flows, h)
				}
			}
		}
		e.queue[i] = nil
	}
	if n > 0 && e.queued > queueLimit-batch { // someone may wait for room
		close(e.room)
		e.room = make(chan struct{})
	}
	e.queued -= n
	rest := copy(e.queue, e.queue[i:])
	clear(e.queue[rest:])
	e.queue = e.queue[:rest]
	return dst
}

// deliver hands a batch of decrypted packets (bufs[i][offset:]) to gVisor
// through GRO. Packets that are not IP are dropped (wireguard-go lets
// none through).
func (e *linkEndpoint) deliver(bufs [][]byte, offset int) {
	d := e.dispatcher.Load()
	if d == nil {
		return
	}
	e.groMu.Lock()
	defer e.groMu.Unlock()
	e.gro.Dispatcher = *d
	for _, b := range bufs {
		b = b[offset:]
		if len(b) == 0 {
			continue
		}
		var proto tcpip.NetworkProtocolNumber
		switch b[0] >> 4 {
		case 4:
			proto = header.IPv4ProtocolNumber
		case 6:
			proto = header.IPv6ProtocolNumber
		default:
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
		pkt.NetworkProtocolNumber = proto
		pkt.RXChecksumValidated = true
		e.gro.Enqueue(pkt)
		pkt.DecRef()
	}
	e.gro.Flush()
}

func (e *linkEndpoint) Close() {
	e.mu.Lock()
	if !e.closed {
		close(e.done)
	}
	e.closed = true
	q := e.queue
	e.queue, e.queued = nil, 0
	e.mu.Unlock()
	for _, p := range q {
		p.DecRef()
	}
}
