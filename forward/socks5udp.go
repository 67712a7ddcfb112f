package forward

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// associate serves UDP ASSOCIATE: a local UDP socket for the client's
// datagrams, relayed through one tunnel UDP socket, for as long as the
// control connection stays open. Only the client that asked may use the
// relay: datagrams must come from the control connection's address, and
// from the port the request named (or, if it named none, the port of the
// first datagram). Replies go to that client only.
func (s *SOCKS5) associate(c net.Conn, reqHost string, reqPort uint16) error {
	clientIP := addrPortOf2(c.RemoteAddr()).Addr().Unmap()
	var client netip.AddrPort
	if a, err := netip.ParseAddr(reqHost); err == nil && !a.IsUnspecified() && reqPort != 0 {
		client = netip.AddrPortFrom(a.Unmap(), reqPort)
		if client.Addr() != clientIP {
			reply(c, socksFailure, nil)
			return fmt.Errorf("UDP ASSOCIATE for %s from %s: not the same host", client, clientIP)
		}
	}
	lhost := addrPortOf2(c.LocalAddr()).Addr()
	local, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lhost, 0)))
	if err != nil {
		reply(c, socksFailure, nil)
		return err
	}
	defer local.Close()
	up, err := s.Tunnel.ListenUDP(netip.AddrPort{})
	if err != nil {
		reply(c, socksFailure, nil)
		return err
	}
	defer up.Close()
	if s.Guard != nil {
		up = guardedPacketConn{PacketConn: up, g: s.Guard, client: c.RemoteAddr().String()}
	}
	if err := reply(c, socksOK, local.LocalAddr()); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // the association ends with the TCP connection
		close(done)
		local.Close()
		up.Close()
	}()
	clientSet := make(chan netip.AddrPort, 1)
	if client.IsValid() {
		clientSet <- client
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer func() {
		select {
		case clientSet <- netip.AddrPort{}: // wake udpReplies if no client came
		default:
		}
	}()
	wg.Add(1)
	go func() { defer wg.Done(); s.udpReplies(up, local, clientSet) }()
	names := newNameCache(s.Tunnel, up, &wg)
	buf := make([]byte, 65535)
	for {
		n, from, err := local.ReadFromUDPAddrPort(buf)
		if err != nil {
			<-done
			return nil
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		switch {
		case from.Addr() != clientIP:
			continue // only the client that asked may use the relay
		case !client.IsValid():
			client = from
			clientSet <- from
		case from != client:
			continue
		}
		host, port, payload, ok := parseUDPHeader(buf[:n])
		if !ok {
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			up.WriteTo(payload, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.Unmap(), port)))
			continue
		}
		names.send(host, port, payload)
	}
}

// nameCache resolves the names in a UDP association's datagrams through
// the tunnel without holding up the relay: a known name is sent at once,
// an unknown one is looked up on a goroutine of its own (at most 8 at a
// time; beyond that the datagram is dropped, as UDP may be).
type nameCache struct {
	tunnel Tunnel
	up     net.PacketConn
	wg     *sync.WaitGroup
	slots  chan struct{}
	mu     sync.Mutex
	addrs  map[string]netip.Addr
}

func newNameCache(t Tunnel, up net.PacketConn, wg *sync.WaitGroup) *nameCache {
	return &nameCache{tunnel: t, up: up, wg: wg, slots: make(chan struct{}, 8), addrs: map[string]netip.Addr{}}
}

func (n *nameCache) send(host string, port uint16, payload []byte) {
	n.mu.Lock()
	a, ok := n.addrs[host]
	n.mu.Unlock()
	if ok {
		n.up.WriteTo(payload, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
		return
	}
	select {
	case n.slots <- struct{}{}:
	default:
		return
	}
	payload = bytes.Clone(payload)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := n.tunnel.Resolve(ctx, host)
		cancel()
		if err != nil || len(addrs) == 0 {
			return
		}
		a := addrs[0].Unmap()
		n.mu.Lock()
		if len(n.addrs) < 256 {
			n.addrs[host] = a
		}
		n.mu.Unlock()
		n.up.WriteTo(payload, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
	}()
}

func addrPortOf2(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// parseUDPHeader reads a SOCKS5 UDP request header (RFC 1928 section 7):
// the destination (an address or a name) and the payload. Fragments are
// dropped.
func parseUDPHeader(b []byte) (host string, port uint16, payload []byte, ok bool) {
	if len(b) < 4 || b[0] != 0 || b[1] != 0 || b[2] != 0 {
		return "", 0, nil, false
	}
	r := bytes.NewReader(b[3:])
	host, port, err := readAddr(r)
	if err != nil {
		return "", 0, nil, false
	}
	return host, port, b[len(b)-r.Len():], true
}

// udpReplies wraps datagrams from the tunnel and sends them to the client.
func (s *SOCKS5) udpReplies(up net.PacketConn, local *net.UDPConn, clientSet <-chan netip.AddrPort) {
	client := <-clientSet
	if !client.IsValid() {
		return
	}
	buf := make([]byte, 65535)
	for {
		n, from, err := up.ReadFrom(buf)
		if err != nil {
			return
		}
		msg := appendAddr([]byte{0, 0, 0}, addrPortOf(from))
		msg = append(msg, buf[:n]...)
		local.WriteToUDPAddrPort(msg, client)
	}
}
