package testnet_test

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/netstack"
)

func connect(t *testing.T, srv *demo.Server) *netstack.Stack {
	t.Helper()
	c, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.Stack
}

func TestTunnelReachesInternet(t *testing.T) {
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st := connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	u, err := st.DialContext(ctx, "udp", "198.51.100.1:7")
	if err != nil {
		t.Fatal(err)
	}
	u.SetDeadline(time.Now().Add(5 * time.Second))
	u.Write([]byte("ping"))
	buf := make([]byte, 64)
	n, err := u.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("UDP echo: %q, %v", buf[:n], err)
	}

	c, err := st.DialContext(ctx, "tcp", demo.WhatsMyIPName+":80")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	b, _ := io.ReadAll(c)
	if want := demo.PublicIP.String(); !contains(string(b), want) {
		t.Fatalf("whatsmyip said %q, want %s", b, want)
	}

	g, err := st.DialContext(ctx, "udp", netip.AddrPortFrom(demo.GatewayAddr, 5351).String())
	if err != nil {
		t.Fatal(err)
	}
	g.SetDeadline(time.Now().Add(5 * time.Second))
	g.Write([]byte{0, 0})
	n, err = g.Read(buf[:])
	if err != nil || n != 12 {
		t.Fatalf("NAT-PMP external address: %d bytes, %v", n, err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// The tunnel carries IPv6 too: the client's config has both families.
func TestTunnelIPv6(t *testing.T) {
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st := connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := st.DialContext(ctx, "tcp", "[fd00:2::1]:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("over v6"))
	buf := make([]byte, 16)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "over v6" {
		t.Fatalf("%q %v", buf[:n], err)
	}
}
