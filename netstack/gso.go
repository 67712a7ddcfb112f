package netstack

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// segments is how many packets pkt becomes on the wire: a GSO packet from
// gVisor's TCP is cut into segments of GSOOptions.MSS payload bytes.
func segments(pkt *stack.PacketBuffer) int {
	if pkt.GSOOptions.Type == stack.GSONone || pkt.GSOOptions.MSS == 0 {
		return 1
	}
	mss := int(pkt.GSOOptions.MSS)
	return max(1, (pkt.Data().Size()+mss-1)/mss)
}

// writeOut writes pkt into bufs[i][offset:], cut into its segments, and
// their lengths into sizes. bufs and sizes must have room for
// segments(pkt) packets. It returns how many it wrote: 0 drops a packet
// it cannot make sense of.
func writeOut(pkt *stack.PacketBuffer, bufs [][]byte, sizes []int, offset int) int {
	if pkt.GSOOptions.Type == stack.GSONone {
		out := bufs[0][offset:]
		if pkt.Size() > len(out) {
			return 0
		}
		if _, _, ok := read(out[:pkt.Size()], pkt.AsSlices(), 0); !ok {
			return 0
		}
		sizes[0] = pkt.Size()
		return 1
	}
	return splitTCP(pkt, bufs, sizes, offset)
}

// splitTCP does what a NIC's TCP segmentation offload does (and Linux's
// tcp_gso_segment): every segment gets the IP and TCP headers of the big
// one with its own length, IPv4 ID (incremented), sequence number and a
// full checksum (gVisor left only the pseudo-header's sum: NeedsCsum);
// FIN and PSH stay on the last segment only, CWR on the first only.
func splitTCP(pkt *stack.PacketBuffer, bufs [][]byte, sizes []int, offset int) int {
	gso := pkt.GSOOptions
	nh, th := pkt.NetworkHeader().Slice(), pkt.TransportHeader().Slice()
	is4 := gso.Type == stack.GSOTCPv4
	if len(th) < header.TCPMinimumSize || gso.MSS == 0 ||
		(is4 && len(nh) < header.IPv4MinimumSize) || (!is4 && len(nh) < header.IPv6MinimumSize) {
		return 0
	}
	ipLen, hdrLen := len(nh), len(nh)+len(th)
	mss, total := int(gso.MSS), pkt.Data().Size()
	n := segments(pkt)
	if n > len(bufs) {
		return 0
	}
	tcp0 := header.TCP(th)
	seq, flags := tcp0.SequenceNumber(), tcp0.Flags()
	var id uint16
	if is4 {
		id = header.IPv4(nh).ID()
	}
	data := pkt.AsSlices()
	skip := hdrLen // the headers come first in AsSlices
	for i := 0; i < n; i++ {
		plen := min(mss, total-i*mss)
		out := bufs[i][offset:]
		if len(out) < hdrLen+plen {
			return 0
		}
		copy(out, nh)
		copy(out[ipLen:], th)
		var ok bool
		if data, skip, ok = read(out[hdrLen:hdrLen+plen], data, skip); !ok {
			return 0
		}
		seg := out[:hdrLen+plen]
		var src, dst tcpip.Address
		if is4 {
			ip := header.IPv4(seg)
			ip.SetTotalLength(uint16(len(seg)))
			ip.SetID(id + uint16(i))
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
			src, dst = ip.SourceAddress(), ip.DestinationAddress()
		} else {
			ip := header.IPv6(seg)
			ip.SetPayloadLength(uint16(len(seg) - header.IPv6MinimumSize))
			src, dst = ip.SourceAddress(), ip.DestinationAddress()
		}
		tcp := header.TCP(seg[ipLen:])
		tcp.SetSequenceNumber(seq + uint32(i*mss))
		f := flags
		if i < n-1 {
			f &^= header.TCPFlagFin | header.TCPFlagPsh
		}
		if i > 0 {
			f &^= header.TCPFlagCwr
		}
		tcp.SetFlags(uint8(f))
		tcp.SetChecksum(0)
		sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(seg)-ipLen))
		tcp.SetChecksum(^checksum.Checksum(seg[ipLen:], sum))
		sizes[i] = len(seg)
	}
	return n
}

// read fills dst from slices, starting skip bytes in, and returns where
// it stopped (the remaining slices and the offset into the first).
func read(dst []byte, slices [][]byte, skip int) ([][]byte, int, bool) {
	for len(slices) > 0 && skip >= len(slices[0]) {
		skip -= len(slices[0])
		slices = slices[1:]
	}
	for len(dst) > 0 {
		if len(slices) == 0 {
			return nil, 0, false
		}
		if skip >= len(slices[0]) { // an empty slice
			slices, skip = slices[1:], 0
			continue
		}
		s := slices[0][skip:]
		c := copy(dst, s)
		dst = dst[c:]
		if c == len(s) {
			slices, skip = slices[1:], 0
		} else {
			skip += c
		}
	}
	return slices, skip, true
}
