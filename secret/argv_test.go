package secret

import (
	"os"
	"strings"
	"testing"
	"unsafe"
)

// The premise of ScrubArg on this machine: os.Args point into the area
// the kernel shows as /proc/self/cmdline (arg_start to arg_end).
func TestArgvIsTheKernelsArgArea(t *testing.T) {
	start, end, ok := argArea()
	if !ok {
		t.Fatal("no arg_start/arg_end in /proc/self/stat")
	}
	for i, a := range os.Args {
		if a == "" {
			continue
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(a)))
		if p < start || p+uintptr(len(a)) > end {
			t.Errorf("os.Args[%d] at %#x is outside the argument area %#x-%#x", i, p, start, end)
		}
	}
}

// ScrubArg leaves alone what is not on the command line: a constant, a
// copy of an argument, a value built at run time.
func TestScrubArgOnlyTheCommandLine(t *testing.T) {
	tests := []string{"a constant", strings.Clone(os.Args[0]), strings.Repeat("built", 3), ""}
	for _, v := range tests {
		before := strings.Clone(v)
		if ScrubArg(v) || v != before {
			t.Errorf("ScrubArg(%q) blanked it (now %q)", before, v)
		}
	}
}
