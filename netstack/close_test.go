package netstack_test

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
)

// Closing a tunnel while a bulk flow pours into it returns promptly: gVisor
// detaches the link endpoint with its stack lock held while a batch being
// delivered waits for that lock (a deadlock the first GRO version had).
func TestCloseDuringBulkTransfer(t *testing.T) {
	srv, err := demo.Start(demo.Options{NATPMP: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, err := srv.Stack.ListenTCP(netip.AddrPortFrom(demo.GatewayAddr, 9000))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			s, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				buf := make([]byte, 64<<10)
				for {
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	for i := 0; i < 10; i++ {
		c, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := c.Stack.DialContext(context.Background(), "tcp", "10.2.0.1:9000")
		if err != nil {
			t.Fatal(err)
		}
		// Wait until data flows, then close the tunnel under it.
		if _, err := io.ReadFull(conn, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, conn)
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: closing the tunnel during a transfer did not return within 10 s", i)
		}
		conn.Close()
	}
}
