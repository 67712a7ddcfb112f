package forward

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuf) Write(p []byte) (int, error) { w.mu.Lock(); defer w.mu.Unlock(); return w.b.Write(p) }
func (w *syncBuf) String() string              { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// The guard keeps every proxy path away from a reserved endpoint (a
// NAT-PMP gateway's 5351 stands in as a loopback UDP socket, PIA's port
// API as a TCP listener): SOCKS5 CONNECT gets reply 2, UDP ASSOCIATE
// drops the datagram, the HTTP proxy answers 502; the same proxies still
// reach everything else; each refused client is logged once.
func TestGuardRefusesReservedEndpoints(t *testing.T) {
	gateway, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gateway.Close()
	gotUDP := make(chan string, 8)
	go func() {
		buf := make([]byte, 100)
		for {
			n, _, err := gateway.ReadFrom(buf)
			if err != nil {
				return
			}
			gotUDP <- string(buf[:n])
		}
	}()
	api := echoTCP(t)
	other := echoTCP(t)
	gwAddr := netip.MustParseAddrPort(gateway.LocalAddr().String())
	apiAddr := netip.MustParseAddrPort(api)
	log := &syncBuf{}
	g := NewGuard(func(network string, dst netip.AddrPort) bool {
		return (network == "udp" && dst == gwAddr) || (network == "tcp" && dst == apiAddr)
	}, slog.New(slog.NewTextHandler(log, nil)))
	addr := serveSOCKS(t, &SOCKS5{Tunnel: loopTunnel{}, Guard: g})

	connect := func(dst string) byte {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte{5, 1, 0})
		io.ReadFull(c, make([]byte, 2))
		ap := netip.MustParseAddrPort(dst)
		c.Write(appendAddr([]byte{5, 1, 0}, ap))
		rep := make([]byte, 10)
		if _, err := io.ReadFull(c, rep); err != nil {
			t.Fatal(err)
		}
		return rep[1]
	}
	if code := connect(api); code != socksNotAllowed {
		t.Errorf("CONNECT to the reserved endpoint: reply %d, want %d", code, socksNotAllowed)
	}
	if code := connect(other); code != socksOK {
		t.Errorf("CONNECT elsewhere: reply %d", code)
	}
	// By name: the name resolves to the reserved address.
	c, _ := net.Dial("tcp", addr)
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write([]byte{5, 1, 0})
	io.ReadFull(c, make([]byte, 2))
	name := "gateway.example"
	req := append([]byte{5, 1, 0, 3, byte(len(name))}, name...)
	req = append(req, byte(apiAddr.Port()>>8), byte(apiAddr.Port()))
	c.Write(req)
	rep := make([]byte, 10)
	io.ReadFull(c, rep)
	c.Close()
	if rep[1] != socksNotAllowed {
		t.Errorf("CONNECT by name to the reserved endpoint: reply %d", rep[1])
	}

	// UDP ASSOCIATE: "delete all mappings" (RFC 6886 3.4) to the gateway
	// is dropped; a datagram to another port still goes.
	ctrl, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	ctrl.SetDeadline(time.Now().Add(3 * time.Second))
	ctrl.Write([]byte{5, 1, 0})
	io.ReadFull(ctrl, make([]byte, 2))
	ctrl.Write([]byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0})
	rep = make([]byte, 10)
	if _, err := io.ReadFull(ctrl, rep); err != nil || rep[1] != 0 {
		t.Fatalf("associate reply %v %v", rep, err)
	}
	relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rep[4:8])), uint16(rep[8])<<8|uint16(rep[9]))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	deleteAll := []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	pc.WriteTo(append(appendAddr([]byte{0, 0, 0}, gwAddr), deleteAll...), net.UDPAddrFromAddrPort(relay))
	sink, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer sink.Close()
	pc.WriteTo(append(appendAddr([]byte{0, 0, 0}, netip.MustParseAddrPort(sink.LocalAddr().String())), "fine"...), net.UDPAddrFromAddrPort(relay))
	sink.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 100)
	if n, _, err := sink.ReadFrom(buf); err != nil || string(buf[:n]) != "fine" {
		t.Fatalf("a datagram elsewhere was not relayed: %v", err)
	}
	select {
	case m := <-gotUDP:
		t.Fatalf("the gateway got %q through the proxy", m)
	case <-time.After(200 * time.Millisecond): // it was sent before "fine", which arrived
	}

	// The HTTP proxy: CONNECT and a plain request.
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: NewHTTPProxy(loopTunnel{}, Credentials{}, g, nil)}
	go srv.Serve(hl)
	defer srv.Close()
	for _, raw := range []string{
		fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", api, api),
		fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", api, api),
	} {
		hc, err := net.Dial("tcp", hl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		hc.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(hc, raw)
		resp, err := http.ReadResponse(bufio.NewReader(hc), nil)
		hc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: HTTP %d", strings.Fields(raw)[0], resp.StatusCode)
		}
	}
	// Once per client address and destination: the TCP API and the UDP
	// gateway.
	if n := strings.Count(log.String(), "client refused"); n != 2 {
		t.Errorf("%d refusals logged:\n%s", n, log)
	}
	if !strings.Contains(log.String(), "client=127.0.0.1:") {
		t.Errorf("the client is not named:\n%s", log)
	}
}
