package forward

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// loopTunnel stands in for the tunnel: dials and UDP sockets are plain
// loopback ones, and every name resolves to 127.0.0.1.
type loopTunnel struct{}

func (loopTunnel) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
func (loopTunnel) ListenUDP(netip.AddrPort) (net.PacketConn, error) {
	return net.ListenPacket("udp", "127.0.0.1:0")
}
func (loopTunnel) Resolve(context.Context, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// failTunnel refuses everything (for the fuzzer: no real traffic).
type failTunnel struct{}

var errNoTunnel = errors.New("no tunnel")

func (failTunnel) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errNoTunnel
}
func (failTunnel) ListenUDP(netip.AddrPort) (net.PacketConn, error) { return nil, errNoTunnel }
func (failTunnel) Resolve(context.Context, string) ([]netip.Addr, error) {
	return nil, errNoTunnel
}

func echoTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}

func serveSOCKS(t *testing.T, s *SOCKS5) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(l); close(done) }()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

func TestSOCKS5Auth(t *testing.T) {
	target := echoTCP(t)
	addr := serveSOCKS(t, &SOCKS5{Tunnel: loopTunnel{}, Auth: Credentials{"alice", "s3cret"}})
	try := func(auth *proxy.Auth) error {
		d, _ := proxy.SOCKS5("tcp", addr, auth, &net.Dialer{Timeout: 2 * time.Second})
		c, err := d.Dial("tcp", target)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, "hi")
		b := make([]byte, 2)
		_, err = io.ReadFull(c, b)
		return err
	}
	if err := try(nil); err == nil {
		t.Error("no credentials: let through")
	}
	if err := try(&proxy.Auth{User: "alice", Password: "wrong"}); err == nil {
		t.Error("wrong password: let through")
	}
	if err := try(&proxy.Auth{User: "alice", Password: "s3cret"}); err != nil {
		t.Errorf("right credentials: %v", err)
	}
}

func TestHTTPProxyAuth(t *testing.T) {
	target := echoTCP(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHTTPProxy(loopTunnel{}, Credentials{"alice", "s3cret"}, nil, nil)}
	go srv.Serve(l)
	defer srv.Close()
	connect := func(auth string) string {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
		if auth != "" {
			req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(auth)) + "\r\n"
		}
		io.WriteString(c, req+"\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if got := connect(""); !strings.Contains(got, "407") {
		t.Errorf("no credentials: %q", got)
	}
	if got := connect("alice:nope"); !strings.Contains(got, "407") {
		t.Errorf("wrong password: %q", got)
	}
	if got := connect("alice:s3cret"); !strings.Contains(got, "200") {
		t.Errorf("right credentials: %q", got)
	}
}

// Only the client that asked may use a UDP association: another host's
// datagrams to the relay go nowhere, and so do the client's own from
// another port than the one it uses.
func TestUDPAssociateOnlyTheClient(t *testing.T) {
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	got := make(chan string, 8)
	go func() {
		buf := make([]byte, 100)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
			echo.WriteTo(buf[:n], from)
		}
	}()
	addr := serveSOCKS(t, &SOCKS5{Tunnel: loopTunnel{}})
	ctrl, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	ctrl.SetDeadline(time.Now().Add(3 * time.Second))
	ctrl.Write([]byte{5, 1, 0})
	io.ReadFull(ctrl, make([]byte, 2))
	ctrl.Write([]byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0}) // UDP ASSOCIATE, client address unknown
	rep := make([]byte, 10)
	if _, err := io.ReadFull(ctrl, rep); err != nil || rep[1] != 0 {
		t.Fatalf("associate reply %v %v", rep, err)
	}
	relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rep[4:8])), uint16(rep[8])<<8|uint16(rep[9]))
	dst := netip.MustParseAddrPort(echo.LocalAddr().String())
	datagram := func(msg string) []byte {
		return append(appendAddr([]byte{0, 0, 0}, dst), msg...)
	}
	send := func(from, msg string) net.PacketConn {
		pc, err := net.ListenPacket("udp", from)
		if err != nil {
			t.Fatal(err)
		}
		pc.WriteTo(datagram(msg), net.UDPAddrFromAddrPort(relay))
		return pc
	}
	client := send("127.0.0.1:0", "from the client")
	defer client.Close()
	select {
	case m := <-got:
		if m != "from the client" {
			t.Fatalf("relayed %q", m)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the client's datagram was not relayed")
	}
	client.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _, err := client.ReadFrom(make([]byte, 100)); err != nil || n == 0 {
		t.Errorf("no reply to the client: %v", err)
	}
	stranger := send("127.0.0.2:0", "from a stranger")
	defer stranger.Close()
	otherPort := send("127.0.0.1:0", "from another port")
	defer otherPort.Close()
	client.WriteTo(datagram("again"), net.UDPAddrFromAddrPort(relay))
	select {
	case m := <-got:
		if m != "again" {
			t.Errorf("relayed %q: only the client's datagrams may go out", m)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the client's second datagram was not relayed")
	}
}

// FuzzSOCKS5 feeds arbitrary bytes to a SOCKS5 session (greeting,
// authentication, request) and arbitrary UDP request headers.
func FuzzSOCKS5(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 1, 2, 1, 5, 'a', 'l', 'i', 'c', 'e', 1, 'x', 5, 1, 0, 3, 4, 'h', 'o', 's', 't', 0, 80})
	f.Add([]byte{5, 1, 0, 5, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, 255})
	s := &SOCKS5{Tunnel: failTunnel{}, Auth: Credentials{"alice", "x"}}
	open := &SOCKS5{Tunnel: failTunnel{}}
	f.Fuzz(func(t *testing.T, in []byte) {
		parseUDPHeader(in)
		for _, srv := range []*SOCKS5{s, open} {
			a, b := net.Pipe()
			go func() {
				b.SetDeadline(time.Now().Add(time.Second))
				b.Write(in)
				b.Close()
			}()
			go io.Copy(io.Discard, b)
			a.SetDeadline(time.Now().Add(time.Second))
			srv.session(a)
		}
	})
}
