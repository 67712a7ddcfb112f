package daemon

import "testing"

// TestTrimmer walks the trimmer through a bulk transfer and the idle
// time after it: no collection while traffic flows, one when it stops
// with memory to give back, one more for the pools' second generation,
// then none while nothing new is held.
func TestTrimmer(t *testing.T) {
	const mb = 1 << 20
	tr := &trimmer{base: 40 * mb}
	steps := []struct {
		moved, held uint64 // at the tick
		want        bool
		after       uint64 // held after the collection, when there is one
	}{
		{500 * mb, 110 * mb, false, 0},  // bulk traffic
		{1000 * mb, 112 * mb, false, 0}, // still moving
		{1000*mb + 10, 112 * mb, true, 80 * mb},
		{1000*mb + 20, 80 * mb, true, 45 * mb}, // second generation
		{1000*mb + 30, 45 * mb, false, 0},
		{1000*mb + 40, 55 * mb, false, 0}, // grown, under the threshold
		{2000 * mb, 100 * mb, false, 0},   // traffic again
		{2000*mb + 1, 100 * mb, true, 60 * mb},
	}
	for i, s := range steps {
		if got := tr.tick(s.moved, s.held); got != s.want {
			t.Fatalf("step %d: trim %v, want %v", i, got, s.want)
		}
		if s.want {
			tr.base = s.after
		}
	}
}
