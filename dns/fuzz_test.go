package dns

import "testing"

// FuzzQuery feeds arbitrary datagrams to the query check and the SERVFAIL
// builder: whatever a local client sends, no panic.
func FuzzQuery(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, q []byte) {
		if _, err := checkQuery(q); err == nil {
			servfail(q)
		}
	})
}
