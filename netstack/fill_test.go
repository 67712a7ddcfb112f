package netstack

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// acceptFill accepts one tunnel connection on b's port 80 and hands it to
// fill.
func acceptFill(t *testing.T, b *Stack, fill func(c *sizedConn)) {
	b.SetTCPHandler(func(r *TCPRequest) {
		c, err := r.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		go fill(c.(*sizedConn))
	})
}

// dialPeer connects from a to b's port 80, closed when the test ends.
func dialPeer(t *testing.T, a *Stack) net.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peer, err := a.DialContext(ctx, "tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return peer
}

// localPair is a kernel TCP connection on loopback: the service's end and
// the bridge's.
func localPair(t *testing.T) (service, bridge *net.TCPConn) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bridge, err = net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	service, err = l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { service.Close(); bridge.Close() })
	return service, bridge
}

// What the service writes reaches the tunnel peer whole and in order, the
// counts add up, and the service's end of stream ends FillFrom with nil.
func TestFillFromCarriesTheStream(t *testing.T) {
	a, b := pair(t)
	service, bridge := localPair(t)
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7 / 5)
	}
	type result struct {
		n, moved int64
		err      error
	}
	done := make(chan result, 1)
	acceptFill(t, b, func(c *sizedConn) {
		var moved int64
		n, err := c.FillFrom(bridge, func(k int) { moved += int64(k) })
		c.CloseWrite()
		done <- result{n, moved, err}
	})
	go func() {
		service.Write(want)
		service.CloseWrite()
	}()
	peer := dialPeer(t, a)
	peer.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("peer read %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer got %d bytes, not the %d the service wrote (or not in order)", len(got), len(want))
	}
	r := <-done
	if r.err != nil || r.n != int64(len(want)) || r.moved != r.n {
		t.Errorf("FillFrom = %d, %v (moved said %d), want %d, nil", r.n, r.err, r.moved, len(want))
	}
}

// A peer that stops reading holds FillFrom back (the data waits in the
// local socket, not in memory of ours), and closing the connection then
// ends FillFrom promptly with an error.
func TestFillFromStopsAtAFullBufferAndEndsOnClose(t *testing.T) {
	a, b := pair(t)
	service, bridge := localPair(t)
	conns := make(chan *sizedConn, 1)
	done := make(chan error, 1)
	var moved int64
	acceptFill(t, b, func(c *sizedConn) {
		conns <- c
		_, err := c.FillFrom(bridge, func(k int) { moved += int64(k) })
		done <- err
	})
	go service.Write(make([]byte, 64<<20)) // far more than any buffer on the way
	dialPeer(t, a)                         // connects, never reads
	c := <-conns
	select {
	case err := <-done:
		t.Fatalf("FillFrom returned (%v) while the peer was not reading", err)
	case <-time.After(time.Second):
	}
	c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("FillFrom on a closed connection returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FillFrom did not return within 10 s of the connection closing")
	}
	// The peer's window and our send buffer bound what left the socket.
	if moved > 16<<20 {
		t.Errorf("moved %d bytes to a peer that read nothing", moved)
	}
}
