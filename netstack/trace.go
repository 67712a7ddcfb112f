package netstack

import (
	"bufio"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// TraceEnv names a file that, when set, gets every TCP connection's state
// as gVisor's sender sees it, at most every traceEvery per connection
// (gVisor's probe runs on each segment received): for measuring what
// holds a connection back (bench/whole-path.sh's VPNFWD_BENCH_TRACE), not
// for production (it keeps a line of state per connection ever seen). The
// columns are in traceHeader.
const TraceEnv = "VPNFWD_TCP_TRACE"

const (
	traceEvery  = 5 * time.Millisecond
	traceHeader = "unix_ms,local,remote,srtt_us,rttvar_us,cwnd,ssthresh,outstanding,inflight,snd_wnd,sndbuf,sndbuf_used,rcvbuf_used,mss,recovery,linkq,cc\n"
)

// tracePath is read at start: vpnfwd's VPNFWD_* settings leave its
// environment once the configuration is read (secret.Protect).
var tracePath = os.Getenv(TraceEnv)

// tcpProtocol is gVisor's TCP, with the tracing probe (and its tracer,
// to be told the stack's link) when TraceEnv is set.
func tcpProtocol() (stack.TransportProtocolFactory, *tracer) {
	tr := processTracer()
	if tr == nil {
		return tcp.NewProtocol, nil
	}
	// The congestion control is set afterwards (tune): NewProtocolProbe's
	// Reno is replaced.
	return tcp.NewProtocolProbe(tr.probe), tr
}

// processTracer is the process's one tracer (nil without TraceEnv): a
// process with two stacks (the demo's client and server) writes one file,
// not the same file twice over.
var processTracer = sync.OnceValue(func() *tracer {
	if tracePath == "" {
		return nil
	}
	// Only the user's: it names the connections' ports.
	f, err := os.OpenFile(tracePath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (no trace)\n", TraceEnv, err)
		return nil
	}
	tr := &tracer{w: bufio.NewWriterSize(f, 1<<20), last: map[tcp.TCPEndpointID]time.Time{}}
	tr.w.WriteString(traceHeader)
	go func() {
		// Written out every second: the file is read after the run.
		for range time.Tick(time.Second) {
			tr.mu.Lock()
			tr.w.Flush()
			tr.mu.Unlock()
		}
	}()
	return tr
})

type tracer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	last map[tcp.TCPEndpointID]time.Time
	link atomic.Pointer[linkEndpoint] // its queue's packets are the linkq column (the last stack made)
}

func (tr *tracer) probe(s *tcp.TCPEndpointState) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if now.Sub(tr.last[s.ID]) < traceEvery {
		return
	}
	tr.last[s.ID] = now
	snd := s.Sender
	cc := "reno" // gVisor fills in CUBIC's state only for CUBIC
	if snd.Cubic.C != 0 {
		cc = "cubic"
	}
	// The probe runs under the connection's lock, as WritePackets does:
	// the link's lock after it is the order the stack already takes.
	linkq := -1
	if l := tr.link.Load(); l != nil {
		l.mu.Lock()
		linkq = l.queued
		l.mu.Unlock()
	}
	fmt.Fprintf(tr.w, "%.3f,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%t,%d,%s\n",
		float64(now.UnixMicro())/1000, s.ID.LocalPort, s.ID.RemotePort,
		snd.RTTState.SRTT.Microseconds(), snd.RTTState.RTTVar.Microseconds(),
		snd.SndCwnd, snd.Ssthresh, snd.Outstanding, snd.SndUna.Size(snd.SndNxt), snd.SndWnd,
		s.SndBufState.SndBufSize, s.SndBufState.SndBufUsed, s.RcvBufState.RcvBufUsed,
		snd.MaxPayloadSize, snd.FastRecovery.Active, linkq, cc)
}
