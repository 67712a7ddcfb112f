// Package rootnet builds throwaway network namespaces joined by veth pairs
// for root-only tests: several "hosts" on one machine, all torn down when
// the test ends. Nothing is ever configured in the machine's own namespace.
// Tests using it skip cleanly when not root or when a tool is missing.
package rootnet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Net is a set of namespaces owned by one test.
type Net struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	ns     []string
	procs  []*exec.Cmd
}

// New checks for root and the given tools (skipping the test otherwise)
// and returns an empty Net whose namespaces are deleted at cleanup.
func New(t testing.TB, tools ...string) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces); CI runs it as root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian package list in .ci/run)", tool)
		}
	}
	n := &Net{t: t, prefix: fmt.Sprintf("vf%d", os.Getpid()%100000)}
	// vpnfwd started by the test keeps its state in the test's own
	// directory, never the machine's /var/lib/vpnfwd.
	t.Setenv("VPNFWD_STATE_DIR", t.TempDir())
	t.Cleanup(n.close)
	return n
}

// NS creates a namespace with loopback up and returns its name.
func (n *Net) NS(name string) string {
	n.t.Helper()
	full := n.prefix + "-" + name
	n.mustRun("", "ip", "netns", "add", full)
	n.mu.Lock()
	n.ns = append(n.ns, full)
	n.mu.Unlock()
	n.Must(full, "ip", "link", "set", "lo", "up")
	return full
}

// Link joins two namespaces with a veth pair and addresses each end
// (CIDR form, e.g. "100.64.7.1/24").
func (n *Net) Link(nsA, ifA, addrA, nsB, ifB, addrB string) {
	n.t.Helper()
	n.mustRun("", "ip", "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	n.Must(nsA, "ip", "addr", "add", addrA, "dev", ifA)
	n.Must(nsB, "ip", "addr", "add", addrB, "dev", ifB)
	n.Must(nsA, "ip", "link", "set", ifA, "up")
	n.Must(nsB, "ip", "link", "set", ifB, "up")
}

func nsArgs(ns string, args []string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// Exec runs a command in ns to completion (10 s at most) and returns its
// combined output.
func (n *Net) Exec(ns string, args ...string) (string, error) {
	return n.ExecTimeout(ns, 10*time.Second, args...)
}

// ExecTimeout is Exec with a time limit of its own.
func (n *Net) ExecTimeout(ns string, limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	a := nsArgs(ns, args)
	out, err := exec.CommandContext(ctx, a[0], a[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ExecInput is Exec with standard input.
func (n *Net) ExecInput(ns, input string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := nsArgs(ns, args)
	cmd := exec.CommandContext(ctx, a[0], a[1:]...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Must is Exec that fails the test on error.
func (n *Net) Must(ns string, args ...string) string {
	n.t.Helper()
	out, err := n.Exec(ns, args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

func (n *Net) mustRun(ns string, args ...string) { n.t.Helper(); n.Must(ns, args...) }

// Proc is a background process in a namespace.
type Proc struct {
	Cmd *exec.Cmd
	Out *SyncBuffer
}

// Start runs a command in ns in the background; it is killed at cleanup.
func (n *Net) Start(ns string, args ...string) *Proc {
	n.t.Helper()
	a := nsArgs(ns, args)
	cmd := exec.Command(a[0], a[1:]...)
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.mu.Lock()
	n.procs = append(n.procs, cmd)
	n.mu.Unlock()
	return &Proc{Cmd: cmd, Out: out}
}

// Signal sends sig to the process and waits up to timeout for it to exit;
// it returns how long that took, or an error if it did not exit.
func (p *Proc) Signal(sig syscall.Signal, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.Cmd.Wait() }()
	p.Cmd.Process.Signal(sig)
	select {
	case <-done:
		return time.Since(start), nil
	case <-time.After(timeout):
		return time.Since(start), fmt.Errorf("still running %s after signal %v", timeout, sig)
	}
}

func (n *Net) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.procs {
		if p.ProcessState == nil {
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			p.Wait()
		}
	}
	for _, ns := range n.ns {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	// wireguard-go killed by the cleanup leaves its control socket.
	if socks, _ := filepath.Glob("/var/run/wireguard/wg" + n.prefix + "*.sock"); len(socks) > 0 {
		for _, s := range socks {
			os.Remove(s)
		}
	}
}

// SyncBuffer is a goroutine-safe output buffer.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *SyncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
