package forward

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"time"
)

// associate serves UDP ASSOCIATE: a local UDP socket for the client's
// datagrams, relayed through one tunnel UDP socket, for as long as the
// control connection stays open.
func (s *SOCKS5) associate(c net.Conn) error {
	clientIP := addrPortOf2(c.RemoteAddr()).Addr()
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
	var client netip.AddrPort
	clientSet := make(chan netip.AddrPort, 1)
	defer func() {
		select {
		case clientSet <- netip.AddrPort{}: // wake udpReplies if no client came
		default:
		}
	}()
	go s.udpReplies(up, local, clientSet)
	buf := make([]byte, 65535)
	for {
		n, from, err := local.ReadFromUDPAddrPort(buf)
		if err != nil {
			<-done
			return nil
		}
		if from.Addr().Unmap() != clientIP.Unmap() {
			continue // only the client that asked may use the relay
		}
		if !client.IsValid() {
			client = from
			clientSet <- from
		}
		dst, payload, ok := s.parseUDP(buf[:n])
		if !ok {
			continue
		}
		up.WriteTo(payload, net.UDPAddrFromAddrPort(dst))
	}
}

func addrPortOf2(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// parseUDP reads a SOCKS5 UDP request header (RFC 1928 section 7) and
// resolves a domain name through the tunnel. Fragments are dropped.
func (s *SOCKS5) parseUDP(b []byte) (netip.AddrPort, []byte, bool) {
	if len(b) < 4 || b[2] != 0 {
		return netip.AddrPort{}, nil, false
	}
	r := bytes.NewReader(b[3:])
	host, port, err := readAddr(r)
	if err != nil {
		return netip.AddrPort{}, nil, false
	}
	payload := b[len(b)-r.Len():]
	a, err := netip.ParseAddr(host)
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, rerr := s.Tunnel.Resolve(ctx, host)
		cancel()
		if rerr != nil || len(addrs) == 0 {
			return netip.AddrPort{}, nil, false
		}
		a = addrs[0]
	}
	return netip.AddrPortFrom(a.Unmap(), port), payload, true
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
