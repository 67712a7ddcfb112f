package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// moveFunc is a Failover whose Move is the func.
type moveFunc func(ctx context.Context) (string, error)

func (f moveFunc) Move(ctx context.Context) (string, error) { return f(ctx) }

// A move slower than the wait (a fresh PIA key on a busy machine) still
// leaves the new server its whole FailoverAfter, counted from the end of
// the move: here the move takes longer than the wait and the new server's
// first answer comes some time after it, within the wait. One move, not
// two. (CI failed in daemon's TestPIARekeyWhenHandshakesKeepFailing with
// two fresh keys when the wait was counted from the start of the move.)
func TestFailoverWaitCountsFromTheEndOfTheMove(t *testing.T) {
	prov := &checkingProvider{fakeProvider: fakeProvider{leases: make(chan provider.Lease)}}
	const wait, move, firstAnswer = 600 * time.Millisecond, 900 * time.Millisecond, 250 * time.Millisecond
	var mu sync.Mutex
	var starts, ends []time.Time
	o := Options{FailoverAfter: wait, Failover: moveFunc(func(ctx context.Context) (string, error) {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		select { // the move's own work, held back longer than the wait
		case <-time.After(move):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		mu.Lock()
		ends = append(ends, time.Now())
		mu.Unlock()
		// The new server answers its first handshake a little later, and
		// the provider maps a port there.
		time.AfterFunc(firstAnswer, func() {
			prov.dead.Store(false)
			select {
			case prov.leases <- lease(1001):
			case <-t.Context().Done(): // (the move's ctx ends as it returns)
			}
		})
		return "server 2 of 2", nil
	})}
	s, _, _ := runWith(t, prov, o)
	prov.leases <- lease(1000)
	waitSnap(t, s, "up", func(sn Snapshot) bool { return sn.State == StateUp && sn.Lease.Held() })
	prov.dead.Store(true)
	waitSnap(t, s, "moved", func(sn Snapshot) bool { return sn.Failovers >= 1 })
	// Up again on the new server; then at least a whole wait with no second move.
	waitSnap(t, s, "up on the new server", func(sn Snapshot) bool { return sn.State == StateUp && sn.Port.Dead == "" && sn.Lease.Held() })
	mu.Lock()
	end := ends[0]
	mu.Unlock()
	quiet := time.Now().Add(wait)
	for time.Now().Before(quiet) {
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(starts) != 1 {
		t.Fatalf("%d moves, want 1: the second began %s after the first ended (wait %s)", len(starts), starts[1].Sub(end).Round(time.Millisecond), wait)
	}
}
