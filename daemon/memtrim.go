package daemon

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Memory goes back to the system once bulk traffic stops. wireguard-go
// keeps its packet buffers (64 KiB each) in pools that only a garbage
// collection empties, and a process that allocates nothing runs none for
// two minutes: measured, vpnfwd's RSS stayed at 112 MB for 110 s after
// the whole-path bulk runs, then fell to 81 MB at Go's forced collection,
// with the pools' second generation still held.
const (
	trimInterval = 30 * time.Second
	idleBytes    = 1 << 20  // moved through the tunnel in an interval: idle below it
	trimGrowth   = 16 << 20 // held since the last trim: worth a collection above it
)

// trimmer decides, once an interval, whether to collect: the tunnel was
// idle and the memory the runtime holds has grown by trimGrowth since the
// last trim. After a trim the next idle interval trims once more (the
// pools keep a second generation through one collection).
type trimmer struct {
	lastMoved uint64
	base      uint64 // memory held after the last trim
	again     bool
}

// tick takes the tunnel's byte count so far and the memory held now, and
// says whether to trim.
func (t *trimmer) tick(moved, held uint64) bool {
	idle := moved-t.lastMoved < idleBytes
	t.lastMoved = moved
	if !idle {
		return false
	}
	if t.again || held >= t.base+trimGrowth {
		t.again = !t.again
		return true
	}
	return false
}

// trimMemory runs until ctx ends; moved reports the bytes the tunnel has
// carried so far.
func trimMemory(ctx context.Context, moved func() (uint64, error)) {
	t := &trimmer{base: heldMemory()}
	tk := time.NewTicker(trimInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		m, err := moved()
		if err != nil {
			continue
		}
		if t.tick(m, heldMemory()) {
			debug.FreeOSMemory()
			t.base = heldMemory()
		}
	}
}

// heldMemory is what the Go runtime has mapped and not handed back.
func heldMemory() uint64 {
	_, held := memoryNow()
	return held
}

// memoryNow is the heap live at the last collection and what the runtime
// holds from the system (0, 0 if the runtime does not say).
func memoryNow() (live, held uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0, 0
		}
	}
	return s[0].Value.Uint64(), s[1].Value.Uint64() - s[2].Value.Uint64()
}
