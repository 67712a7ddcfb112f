package demo

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// startInternet serves the simulated internet: DNS on the gateway, and
// what's-my-IP (HTTP :80) and echo (TCP and UDP :7) on InternetHost.
func (s *Server) startInternet() error {
	dns, err := s.Stack.ListenUDP(netip.AddrPortFrom(GatewayAddr, 53))
	if err != nil {
		return err
	}
	s.goFunc(func() { s.serveDNS(dns) })
	dnsTCP, err := s.Stack.ListenTCP(netip.AddrPortFrom(GatewayAddr, 53))
	if err != nil {
		return err
	}
	s.goFunc(func() { s.serveDNSTCP(dnsTCP) })
	web, err := s.Stack.ListenTCP(netip.AddrPortFrom(InternetHost, 80))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, PublicIP.String()+"\n")
	})}
	s.goFunc(func() { srv.Serve(web) })
	echo, err := s.Stack.ListenTCP(netip.AddrPortFrom(InternetHost, 7))
	if err != nil {
		return err
	}
	s.goFunc(func() { serveEcho(echo) })
	echo6, err := s.Stack.ListenTCP(netip.AddrPortFrom(GatewayAddr6, 7))
	if err != nil {
		return err
	}
	s.goFunc(func() { serveEcho(echo6) })
	uecho, err := s.Stack.ListenUDP(netip.AddrPortFrom(InternetHost, 7))
	if err != nil {
		return err
	}
	s.goFunc(func() { serveUDPEcho(uecho) })
	s.goFunc(func() {
		<-s.ctx.Done()
		dns.Close()
		srv.Close()
		echo.Close()
		echo6.Close()
		uecho.Close()
	})
	return nil
}

func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() { io.Copy(c, c); c.Close() }()
	}
}

func serveUDPEcho(pc net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return // closed: gonet reports it as more than net.ErrClosed
		}
		pc.WriteTo(buf[:n], from)
	}
}

func (s *Server) serveDNS(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return // closed: gonet reports it as more than net.ErrClosed
		}
		if out, ok := answerDNS(buf[:n], true); ok {
			pc.WriteTo(out, from)
		}
	}
}

// serveDNSTCP answers DNS over TCP (length-prefixed messages).
func (s *Server) serveDNSTCP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				var n [2]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				q := make([]byte, int(n[0])<<8|int(n[1]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				out, ok := answerDNS(q, false)
				if !ok {
					return
				}
				c.Write(append([]byte{byte(len(out) >> 8), byte(len(out))}, out...))
			}
		}()
	}
}

// BigName has more A records than fit a 512-byte UDP answer: over UDP the
// answer is truncated (TC), over TCP it is whole.
const BigName = "big.test"

// answerDNS answers A queries for the test names; everything else is
// NXDOMAIN (AAAA for known names: an empty answer). Over UDP (udp true) an
// answer over 512 bytes is cut to its question with TC set, as servers do
// for clients without EDNS.
func answerDNS(q []byte, udp bool) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	name := strings.TrimSuffix(strings.ToLower(qs[0].Name.String()), ".")
	known := name == WhatsMyIPName || name == EchoName || name == BigName
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(qs[0])
	b.StartAnswers()
	if known && qs[0].Type == dnsmessage.TypeA {
		n := 1
		if name == BigName {
			n = 60
		}
		for i := range n {
			a := InternetHost.As4()
			a[3] += byte(i)
			b.AResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
		}
	}
	out, err := b.Finish()
	if err == nil && udp && len(out) > 512 {
		rh.Truncated = true
		tb := dnsmessage.NewBuilder(nil, rh)
		tb.StartQuestions()
		tb.Question(qs[0])
		out, err = tb.Finish()
	}
	return out, err == nil
}
