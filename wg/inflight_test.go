package wg

import (
	"testing"
	"time"
)

// A direction at its limit waits until packets leave, and no longer.
// (Its count never goes stale here, so nothing but packets leaving can
// let the read go on.)
func TestInflightWaitsForPacketsToLeave(t *testing.T) {
	f := newInflight(4, time.Hour)
	f.add(4)
	released := make(chan struct{})
	go func() {
		f.wait()
		close(released)
	}()
	select {
	case <-released:
		t.Fatal("a read went on at the limit")
	case <-time.After(50 * time.Millisecond):
	}
	f.left(1)
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("a read still waits after packets left")
	}
	if got := f.n.Load(); got != 3 {
		t.Errorf("count %d, want 3", got)
	}
}

// Packets wireguard-go dropped are never counted back: a direction at its
// limit that sees nothing leave for its stale time starts again from
// zero, and a count never goes below zero.
func TestInflightStaleCountStartsAgain(t *testing.T) {
	const stale = 20 * time.Millisecond
	f := newInflight(2, stale)
	f.add(5)
	start := time.Now()
	f.wait()
	if d := time.Since(start); d < stale {
		t.Errorf("gave up after %s, before %s", d, stale)
	}
	if got := f.n.Load(); got != 0 {
		t.Errorf("count %d after a stale wait, want 0", got)
	}
	f.left(3)
	if got := f.n.Load(); got != 0 {
		t.Errorf("count %d, want never below 0", got)
	}
	f.wait() // under the limit: at once
}
