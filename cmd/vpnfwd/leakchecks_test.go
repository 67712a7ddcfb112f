package main

import "testing"

func TestPortAnswer(t *testing.T) {
	for in, want := range map[string]string{
		"1": "1", " 0\n": "0", "Open": "open", `{"open":true}`: "true", `{"status":"closed"}`: "closed", `{"reachable":false}`: "false",
	} {
		if got := portAnswer(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
