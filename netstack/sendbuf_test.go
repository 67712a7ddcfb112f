package netstack

import (
	"testing"
	"time"
)

func TestSendBufFor(t *testing.T) {
	const top = 6 << 20
	for _, c := range []struct {
		name string
		rate float64
		rtt  time.Duration
		want int64
	}{
		// A seeding client's peer downloading at 1 Mbit/s, 50 ms away:
		// its bandwidth-delay product is 6 KB, the floor holds.
		{"slow peer", 125e3, 50 * time.Millisecond, sendBufMin},
		{"idle", 0, 10 * time.Millisecond, sendBufMin},
		// Held back by its 64 KiB buffer on a 2 ms path (32 MB/s): the
		// buffer triples.
		{"buffer-bound grows", 64 << 10 / 2e-3, 2 * time.Millisecond, 3 * 64 << 10},
		// 100 Mbit/s to a peer 100 ms away: three BDPs.
		{"long fat path", 12.5e6, 100 * time.Millisecond, 3750000},
		{"capped", 1e9, 100 * time.Millisecond, top},
		// A round trip under 1 ms counts as 1 ms.
		{"loopback-near", 100e6, 100 * time.Microsecond, 300000},
	} {
		if got := sendBufFor(c.rate, c.rtt, top); got != c.want {
			t.Errorf("%s: sendBufFor(%.0f B/s, %s) = %d, want %d", c.name, c.rate, c.rtt, got, c.want)
		}
	}
}
