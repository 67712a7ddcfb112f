// Package testkit holds helpers that tests of several packages share: a
// local service that answers, a goroutine-leak check, dialling the
// in-process VPN server's public ports. Only tests import it.
package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/vpnfwd/vpnfwd/internal/testnet"
)

// EchoService is a local service on 127.0.0.1 that answers a TCP line and
// a UDP datagram with "service got: " and what it got (as the demo's
// service does). It closes when the test ends.
func EchoService(t testing.TB) (addr string, port uint16) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); pc.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "service got: %s", line)
			}()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("service got: "), buf[:n]...), from)
		}
	}()
	return l.Addr().String(), netip.MustParseAddrPort(l.Addr().String()).Port()
}

// TCP sends msg as a line to addr and returns the answer, trimmed.
func TCP(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "%s\n", msg)
	b, err := io.ReadAll(c)
	return strings.TrimSpace(string(b)), err
}

// PublicAddr is where the in-process VPN server's public port is reached.
func PublicAddr(port uint16) string {
	return net.JoinHostPort(testnet.PublicBind.String(), strconv.Itoa(int(port)))
}

// LeakMarkers are frames that only vpnfwd's own running parts have (the
// in-process VPN server uses netstack and wg too, so those don't count).
var LeakMarkers = []string{"vpnfwd/session.", "vpnfwd/forward.", "vpnfwd/publish.", "vpnfwd/api.", "vpnfwd/daemon.(*Daemon)"}

// CheckNoLeaks fails the test if goroutines of a stopped vpnfwd are still
// running 2 s after it returned: every goroutine must have an owner that
// waited for it.
func CheckNoLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, m := range LeakMarkers {
				if strings.Contains(g, m) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines outlived vpnfwd:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// UDP sends msg to addr and returns the first answer (5 tries, 1 s each).
func UDP(addr, msg string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for range 5 {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", errors.New("no UDP reply")
}

// SOCKS fetches url through the SOCKS5 proxy at socks and returns the
// body, trimmed.
func SOCKS(socks, url string) (string, error) {
	dialer, err := proxy.SOCKS5("tcp", socks, nil, &net.Dialer{})
	if err != nil {
		return "", err
	}
	cd := dialer.(proxy.ContextDialer)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: cd.DialContext}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}
