package netstack

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// The trace's lines have the header's columns, and one connection is
// sampled at most every traceEvery.
func TestTraceLines(t *testing.T) {
	var b strings.Builder
	tr := &tracer{w: bufio.NewWriter(&b), last: map[tcp.TCPEndpointID]time.Time{}}
	s := &tcp.TCPEndpointState{ID: tcp.TCPEndpointID{LocalPort: 5201, RemotePort: 40000}}
	s.Sender.SndCwnd = 10
	s.Sender.RTTState.SRTT = 1500 * time.Microsecond
	tr.probe(s)
	tr.probe(s) // within traceEvery: not written
	tr.w.Flush()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %q", len(lines), b.String())
	}
	cols := strings.Split(lines[0], ",")
	if want := strings.Count(traceHeader, ",") + 1; len(cols) != want {
		t.Fatalf("%d columns, want %d: %s", len(cols), want, lines[0])
	}
	if cols[1] != "5201" || cols[2] != "40000" || cols[3] != "1500" || cols[5] != "10" || cols[16] != "reno" {
		t.Errorf("line %s", lines[0])
	}
}
