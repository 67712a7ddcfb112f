package netstack

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// An accepted connection's congestion control follows its path's round
// trip, as its handshake took it (the SYN-ACK out to the ACK in).
//
// gVisor's CUBIC leaves slow start by HyStart's ACK-train test: when one
// round's ACKs spread over half the last round's least RTT. Linux's CUBIC
// allows up to a millisecond more for ACKs that come in batches
// (hystart_ack_delay); gVisor's does not, and through wireguard-go every
// ACK comes in a batch. On a 1-ms path (bench/whole-path.sh) it left slow
// start within 40 ms at 59-106 segments, about half the path's window,
// and its growth from there, half a segment per round trip, held one
// upload at 0.87-0.91x the kernel-TUN reference. Reno has no HyStart: its
// slow start runs until a loss (1.04-1.13x in the same rounds;
// VPNFWD_BENCH_TRACE shows the windows; docs/figures.md, "One upload").
//
// Where the round trip is longer than shortRTT, a batch's spread is small
// against it, and CUBIC is what Linux runs: it refills a long path after a
// loss faster than Reno's one segment per round trip. Paths that long
// were not measured here (this kernel has no netem), so they keep CUBIC.
//
// shortRTT is gVisor's HyStart's own least delay threshold (a variable
// for the tests, which cannot pick their handshakes' times).
var shortRTT = 4 * time.Millisecond

// congestionControlFor is the congestion control of a connection whose
// handshake took rtt.
func congestionControlFor(rtt time.Duration) tcpip.CongestionControlOption {
	if rtt < shortRTT {
		return "reno"
	}
	return "cubic"
}
