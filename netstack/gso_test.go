package netstack

import (
	"bytes"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// gsoPacket builds a packet as gVisor's TCP hands it to a host-GSO link
// (transport/tcp/connect.go buildTCPHdr): headers pushed in front of the
// payload, the TCP checksum holding only the pseudo-header's sum.
func gsoPacket(t *testing.T, v6 bool, payload []byte, mss uint16, flags header.TCPFlags) *stack.PacketBuffer {
	t.Helper()
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: 80,
		Payload:            buffer.MakeWithData(payload),
	})
	tcp := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize + 12))
	tcp.Encode(&header.TCPFields{SrcPort: 5201, DstPort: 40000, SeqNum: 0xfffff000, AckNum: 7,
		DataOffset: header.TCPMinimumSize + 12, Flags: flags, WindowSize: 512})
	copy(tcp[header.TCPMinimumSize:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}) // NOP NOP timestamps
	src, dst := netip.MustParseAddr("10.2.0.2"), netip.MustParseAddr("100.64.7.2")
	gso := stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: header.TCPChecksumOffset,
		MSS: mss, L3HdrLen: header.IPv4MinimumSize, MaxSize: gsoMaxSize(1420)}
	if v6 {
		src, dst = netip.MustParseAddr("fd00::2"), netip.MustParseAddr("2001:db8::7")
		gso.Type, gso.L3HdrLen = stack.GSOTCPv6, header.IPv6MinimumSize
	}
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(pkt.Size())))
	if v6 {
		ip := header.IPv6(pkt.NetworkHeader().Push(header.IPv6MinimumSize))
		ip.Encode(&header.IPv6Fields{PayloadLength: uint16(pkt.Size() - header.IPv6MinimumSize),
			TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: s, DstAddr: d})
	} else {
		ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(pkt.Size()), ID: 0xfffe, TTL: 64,
			Protocol: uint8(header.TCPProtocolNumber), SrcAddr: s, DstAddr: d})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	pkt.GSOOptions = gso
	return pkt
}

func TestSplitTCP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, size := range []int{1, 1000, 1001, 4999, 5000, 65000} {
			payload := make([]byte, size)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			pkt := gsoPacket(t, v6, payload, 1000, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin|header.TCPFlagCwr)
			want := (size + 999) / 1000
			if got := segments(pkt); got != want {
				t.Fatalf("segments = %d, want %d", got, want)
			}
			bufs := make([][]byte, 128)
			for i := range bufs {
				bufs[i] = make([]byte, 16+1500)
			}
			sizes := make([]int, 128)
			n := writeOut(pkt, bufs, sizes, 16)
			pkt.DecRef()
			if n != want {
				t.Fatalf("v6=%v size %d: %d packets, want %d", v6, size, n, want)
			}
			var got []byte
			for i := 0; i < n; i++ {
				seg := bufs[i][16 : 16+sizes[i]]
				var tcp header.TCP
				var src, dst tcpip.Address
				if v6 {
					ip := header.IPv6(seg)
					if int(ip.PayloadLength())+header.IPv6MinimumSize != len(seg) {
						t.Fatalf("segment %d: IPv6 payload length %d for %d bytes", i, ip.PayloadLength(), len(seg))
					}
					tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
				} else {
					ip := header.IPv4(seg)
					if !ip.IsValid(len(seg)) || !ip.IsChecksumValid() || int(ip.TotalLength()) != len(seg) {
						t.Fatalf("segment %d: bad IPv4 header % x", i, seg[:20])
					}
					if ip.ID() != 0xfffe+uint16(i) {
						t.Fatalf("segment %d: IPv4 ID %#x", i, ip.ID())
					}
					tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
				}
				data := tcp.Payload()
				if len(data) > 1000 {
					t.Fatalf("segment %d carries %d bytes, MSS 1000", i, len(data))
				}
				if !tcp.IsChecksumValid(src, dst, checksum.Checksum(data, 0), uint16(len(data))) {
					t.Fatalf("v6=%v size %d segment %d: bad TCP checksum", v6, size, i)
				}
				if tcp.SequenceNumber() != 0xfffff000+uint32(i*1000) {
					t.Fatalf("segment %d: seq %#x", i, tcp.SequenceNumber())
				}
				f, last := tcp.Flags(), i == n-1
				if f.Contains(header.TCPFlagFin) != last || f.Contains(header.TCPFlagPsh) != last ||
					f.Contains(header.TCPFlagCwr) != (i == 0) || !f.Contains(header.TCPFlagAck) {
					t.Fatalf("segment %d of %d: flags %s", i, n, f)
				}
				if len(tcp.Options()) != 12 {
					t.Fatalf("segment %d: options %x", i, tcp.Options())
				}
				got = append(got, data...)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("v6=%v size %d: payload differs after the split", v6, size)
			}
		}
	}
}

// A packet without GSO is copied as it is, and a GSO packet whose
// segments do not fit in the buffers left is dropped, not half sent.
func TestWriteOutPlainAndTooMany(t *testing.T) {
	pkt := gsoPacket(t, false, make([]byte, 500), 1000, header.TCPFlagAck)
	pkt.GSOOptions = stack.GSO{}
	want := pkt.ToView().AsSlice()
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	if n := writeOut(pkt, bufs, sizes, 0); n != 1 || !bytes.Equal(bufs[0][:sizes[0]], want) {
		t.Fatalf("plain packet: n=%d, % x", n, bufs[0][:sizes[0]])
	}
	pkt.DecRef()
	big := gsoPacket(t, false, make([]byte, 3000), 1000, header.TCPFlagAck)
	defer big.DecRef()
	bufs, sizes = [][]byte{make([]byte, 1500), make([]byte, 1500)}, []int{0, 0}
	if n := writeOut(big, bufs, sizes, 0); n != 0 {
		t.Fatalf("3 segments into 2 buffers: wrote %d", n)
	}
}

// Even at the smallest MTU a config may set, the largest segment gVisor
// hands over is cut into no more packets than one wireguard-go batch.
func TestGSOMaxSizeFitsABatch(t *testing.T) {
	for _, mtu := range []int{576, 1280, 1420, 9000} {
		mss := mtu - header.IPv4MinimumSize - header.TCPMinimumSize - 40 // 40: the most TCP options
		burst := sendBurst(mtu)
		if segs := (int(gsoMaxSize(mtu)) + mss - 1) / mss; segs > burst || burst > batch {
			t.Errorf("MTU %d: %d segments of %d bytes, burst %d", mtu, segs, mss, burst)
		}
		// A burst of full WireGuard messages, with Ethernet, VLAN, IPv6
		// and UDP headers, stays within a 64 KiB GSO packet.
		if size := burst*(mtu+32) + 18 + 40 + 8; size > 1<<16 && burst > 1 {
			t.Errorf("MTU %d: a burst of %d makes a %d-byte GSO packet", mtu, burst, size)
		}
	}
	if b := sendBurst(1420); b != 45 {
		t.Errorf("burst at MTU 1420: %d, want 45 (46 messages of 1,424 bytes overflow 64 KiB on a veth)", b)
	}
}
