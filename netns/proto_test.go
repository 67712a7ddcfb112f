package netns

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// pair is a connected SEQPACKET pair, as vpnfwd and the agent talk.
func pair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// A request and a file descriptor cross as one message, and the file is
// the same file on the other side.
func TestSendRecvWithFile(t *testing.T) {
	a, b := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	rq := request{ID: 7, Op: "redirect", Redirects: []Redirect{{Proto: "tcp", From: 41234, To: 7000}}}
	if err := send(a, rq, w); err != nil {
		t.Fatal(err)
	}
	var got request
	files, err := recv(b, &got)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(files)
	if got.ID != 7 || got.Op != "redirect" || len(got.Redirects) != 1 || got.Redirects[0].To != 7000 || len(files) != 1 {
		t.Fatalf("got %+v with %d files", got, len(files))
	}
	files[0].WriteString("through the passed descriptor")
	files[0].Close()
	w.Close()
	b2, _ := io.ReadAll(r)
	if string(b2) != "through the passed descriptor" {
		t.Errorf("pipe read %q", b2)
	}
}

// A message over the limit is refused when sent, never cut silently.
func TestMessageLimit(t *testing.T) {
	a, _ := pair(t)
	big := request{Op: "start", Argv: []string{strings.Repeat("x", maxMsg)}}
	if err := send(a, big); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("sending %d bytes: %v", maxMsg, err)
	}
}

// A message cut on the way (a peer that ignores the limit) is an error.
func TestTruncatedMessage(t *testing.T) {
	a, b := pair(t)
	raw := `{"id":1,"op":"start","argv":["` + strings.Repeat("y", maxMsg+10) + `"]}`
	if _, _, err := a.WriteMsgUnix([]byte(raw), nil, nil); err != nil {
		t.Fatal(err)
	}
	var got request
	if _, err := recv(b, &got); err == nil || !strings.Contains(err.Error(), "cut") {
		t.Errorf("a cut message: %v", err)
	}
}
