package secret

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// argv is the command line as the runtime handed it over. On Linux its
// strings are not copies: they point into the argument area at the top of
// the stack that the kernel reads for /proc/PID/cmdline (arg_start to
// arg_end in /proc/PID/stat), which every user of the machine can read.
var argv = slices.Clone(os.Args)

// ScrubArg overwrites v with 'x' in place when v lies in this process's
// own command line (one of os.Args as the kernel passed them, or part of
// one, as the flag package hands over "--flag=value"'s value), so that
// /proc/PID/cmdline no longer shows it. Copy v first (strings.Clone): it
// reads "xxx" afterwards. Anything else — a string built in the program,
// a test's literal, an environment value — is left alone. It reports
// whether it blanked anything.
//
// /proc/PID/cmdline shows the secret from exec until this runs, a few
// milliseconds; ps and the shell's history may have it regardless.
func ScrubArg(v string) bool {
	if v == "" {
		return false
	}
	start, end, ok := argArea()
	if !ok {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	if p < start || p+uintptr(len(v)) > end {
		return false
	}
	for _, a := range argv {
		if a == "" {
			continue
		}
		ap := uintptr(unsafe.Pointer(unsafe.StringData(a)))
		if p < ap || p+uintptr(len(v)) > ap+uintptr(len(a)) {
			continue
		}
		// Writable: it is the process's stack, not a Go string constant.
		b := unsafe.Slice(unsafe.StringData(a), len(a))[p-ap:][:len(v)]
		for i := range b {
			b[i] = 'x'
		}
		return true
	}
	return false
}

// argArea is where the kernel keeps the command line it shows in
// /proc/self/cmdline: fields 48 and 49 (arg_start, arg_end) of
// /proc/self/stat. ScrubArg writes only there, so a runtime that had
// copied the arguments elsewhere would make it do nothing rather than
// write into memory that is not the command line.
func argArea() (start, end uintptr, ok bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 47 {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(f[48-3], 10, 64)
	e, err2 := strconv.ParseUint(f[49-3], 10, 64)
	if err1 != nil || err2 != nil || s == 0 || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}
