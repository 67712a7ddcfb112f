package demo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/proxy"
)

// The demo's own end points: the local service behind vpnfwd, an internet
// peer, an app using the proxy (tests use them too, through testkit).

// Service is a local service that answers every TCP line and UDP
// datagram with "service got: ..." (the thing a user wants reachable).
type Service struct {
	Addr string // 127.0.0.1:PORT, TCP and UDP
	tcp  net.Listener
	udp  net.PacketConn
}

// StartService starts a Service on a free loopback port; Close stops it.
func StartService() (*Service, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		l.Close()
		return nil, err
	}
	s := &Service{Addr: l.Addr().String(), tcp: l, udp: pc}
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
	return s, nil
}

// Close stops the service.
func (s *Service) Close() { s.tcp.Close(); s.udp.Close() }

// TCP is an internet peer: it sends msg as a line to addr and returns
// the answer, trimmed.
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

// SOCKS is an app using the SOCKS5 proxy at socks: it fetches url and
// returns the body, trimmed.
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
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return strings.TrimSpace(string(b)), err
}
