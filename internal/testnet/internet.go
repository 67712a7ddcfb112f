package testnet

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
		if out, ok := answerDNS(buf[:n]); ok {
			pc.WriteTo(out, from)
		}
	}
}

// answerDNS answers A queries for the test names; everything else is
// NXDOMAIN (AAAA for known names: an empty answer).
func answerDNS(q []byte) ([]byte, bool) {
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
	known := name == WhatsMyIPName || name == EchoName
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
		b.AResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.AResource{A: InternetHost.As4()})
	}
	out, err := b.Finish()
	return out, err == nil
}
