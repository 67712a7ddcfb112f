package netns

import (
	"os"
	"testing"
)

// A confined CMD's id is in vpnfwd's range, never nobody's, and never an
// id a process runs as; two agents get different ids.
func TestConfinedID(t *testing.T) {
	for _, c := range []struct {
		seed  int
		inUse map[uint32]bool
		want  uint32
	}{
		{0, nil, confinedBase},
		{5, nil, confinedBase + 5},
		{confinedSize + 5, nil, confinedBase + 5},
		{5, map[uint32]bool{confinedBase + 5: true, confinedBase + 6: true}, confinedBase + 7},
		{confinedSize - 1, map[uint32]bool{confinedBase + confinedSize - 1: true}, confinedBase},
	} {
		if got := confinedID(c.seed, c.inUse); got != c.want {
			t.Errorf("seed %d in use %v: %d, want %d", c.seed, c.inUse, got, c.want)
		}
	}
	ids := idsInUse()
	if !ids[uint32(os.Getuid())] {
		t.Errorf("this process's uid %d is not among the ids in use", os.Getuid())
	}
	if id := confinedID(os.Getpid(), ids); ids[id] || id == 65534 || id < confinedBase || id >= confinedBase+confinedSize {
		t.Errorf("confined id %d", id)
	}
}
