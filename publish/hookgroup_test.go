package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A hook ended at its timeout, or by vpnfwd's exit, takes its children
// with it: the shell's background and foreground children (and theirs)
// are in its process group, and none of them is left afterwards.
func TestHookTimeoutEndsItsGroup(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  bool // vpnfwd's context ends instead of the timeout
	}{
		{name: "timeout", timeout: time.Second},
		{name: "vpnfwd exits", timeout: time.Minute, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A mark in the environment the hook and its children
			// inherit finds them wherever they are.
			value := fmt.Sprintf("%d-%s", os.Getpid(), tt.name)
			t.Setenv("HC_HOOK_MARK", value)
			started := filepath.Join(t.TempDir(), "started")
			// The shell starts two children; the first one also starts a
			// grandchild.
			e := Exec{Command: `sh -c '(sleep 1000 & sleep 1000) & touch ` + started + `; sleep 1000'`, Timeout: tt.timeout}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				go func() {
					waitFor(10*time.Second, func() bool { _, err := os.Stat(started); return err == nil })
					cancel()
				}()
			}
			start := time.Now()
			err := e.Publish(ctx, portEv("port", 4242))
			if err == nil || time.Since(start) > 10*time.Second {
				t.Fatalf("hook returned %v after %s (want an error soon after the timeout)", err, time.Since(start))
			}
			if _, err := os.Stat(started); err != nil {
				t.Fatalf("the hook did not start: %v", err)
			}
			var left []int
			if !waitFor(5*time.Second, func() bool { left = marked("HC_HOOK_MARK=" + value); return len(left) == 0 }) {
				for _, pid := range left {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				t.Errorf("processes %v of the hook still run after it was ended", left)
			}
		})
	}
}

// marked lists the live (not zombie) processes whose environment holds
// the variable kv.
func marked(kv string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), kv) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		// pid (comm) state ...: comm may hold spaces.
		if i := strings.LastIndexByte(string(stat), ')'); err != nil || i < 0 || strings.HasPrefix(string(stat[i+1:]), " Z") {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// waitFor polls cond every 20 ms until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
