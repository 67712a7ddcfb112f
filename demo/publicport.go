package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/provider/natpmp"
)

// publicPort is the server's public side of one mapping: a host socket on
// the public address whose traffic is carried into the tunnel to the
// client, with the remote peer's address kept (as 198.18.x.y).
type publicPort struct {
	once  sync.Once
	close func()
}

// publicFree reports whether the public port can be opened.
func (s *Server) publicFree(op uint8, ap netip.AddrPort) bool {
	if op == natpmp.OpMapTCP {
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	c, err := net.ListenPacket("udp", ap.String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// peerAddr maps a loopback source to the address the client sees:
// 127.a.b.c -> 198.18.b.c, same port.
func peerAddr(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	b := ap.Addr().Unmap().As4()
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, b[2], b[3]}), ap.Port())
}

func (s *Server) openPublic(op uint8, public, client netip.AddrPort) (*publicPort, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	p := &publicPort{}
	if op == natpmp.OpMapTCP {
		l, err := net.Listen("tcp", public.String())
		if err != nil {
			cancel()
			return nil, err
		}
		p.close = func() { cancel(); l.Close() }
		s.goFunc(func() { s.publicTCP(ctx, l, client) })
		s.goFunc(func() { <-ctx.Done(); l.Close() }) // the server's Close ends it too
		return p, nil
	}
	pc, err := net.ListenPacket("udp", public.String())
	if err != nil {
		cancel()
		return nil, err
	}
	p.close = func() { cancel(); pc.Close() }
	s.goFunc(func() { s.publicUDP(ctx, pc, client) })
	s.goFunc(func() { <-ctx.Done(); pc.Close() })
	return p, nil
}

func (p *publicPort) shut() { p.once.Do(p.close) }

func (s *Server) publicTCP(ctx context.Context, l net.Listener, client netip.AddrPort) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			in, err := s.Stack.DialTCPFrom(dctx, peerAddr(c.RemoteAddr()), client)
			cancel()
			if err != nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // pass the refusal on as a RST
				}
				c.Close()
				return
			}
			pipeBoth(c, in)
		}()
	}
}

type closeWriter interface{ CloseWrite() error }

func pipeBoth(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if cw, ok := dst.(closeWriter); ok {
			cw.CloseWrite()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

func (s *Server) publicUDP(ctx context.Context, pc net.PacketConn, client netip.AddrPort) {
	var mu sync.Mutex
	flows := map[string]net.Conn{}
	defer func() {
		mu.Lock()
		for _, c := range flows {
			c.Close()
		}
		mu.Unlock()
	}()
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		mu.Lock()
		c := flows[from.String()]
		if c == nil {
			c, err = s.Stack.DialUDPFrom(peerAddr(from), client)
			if err != nil {
				mu.Unlock()
				continue
			}
			flows[from.String()] = c
			go func(c net.Conn, from net.Addr) {
				rb := make([]byte, 65535)
				for {
					c.SetReadDeadline(time.Now().Add(2 * time.Minute))
					k, err := c.Read(rb)
					if err != nil {
						mu.Lock()
						delete(flows, from.String())
						mu.Unlock()
						c.Close()
						return
					}
					pc.WriteTo(rb[:k], from)
				}
			}(c, from)
		}
		mu.Unlock()
		c.Write(buf[:n])
	}
}

// Forward opens port on the server's public side (TCP and UDP) to the
// client's same port, as a provider's port forwarding does; forwarding a
// port again moves it to the new client.
func (s *Server) Forward(port uint16, client netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forwards == nil {
		s.forwards = map[uint16][]*publicPort{}
	}
	for _, p := range s.forwards[port] {
		p.shut()
	}
	s.forwards[port] = nil
	for _, op := range []uint8{natpmp.OpMapTCP, natpmp.OpMapUDP} {
		p, err := s.openPublic(op, netip.AddrPortFrom(PublicBind, port), netip.AddrPortFrom(client, port))
		if err != nil {
			return fmt.Errorf("opening public port %d: %w", port, err)
		}
		s.forwards[port] = append(s.forwards[port], p)
	}
	return nil
}
