package forward

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tunnel is the way out for the proxies: every connection, datagram and
// name lookup goes through it, never around it.
type Tunnel interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	ListenUDP(netip.AddrPort) (net.PacketConn, error)
	Resolve(ctx context.Context, host string) ([]netip.Addr, error)
}

// SOCKS5 reply codes (RFC 1928 section 6).
const (
	socksOK              = 0
	socksFailure         = 1
	socksNotAllowed      = 2
	socksHostUnreachable = 4
	socksRefused         = 5
	socksCmdUnsupported  = 7
	socksAddrUnsupported = 8
)

// Time limits of the proxies: a client's greeting, login and request
// (SOCKS5) or request header (HTTP) must arrive within handshakeTimeout
// of its connection (or, on a kept-alive HTTP connection, of the
// request's first bytes), and a dial through the tunnel gives up after
// dialTimeout. With the listener's caps (connlimit) they bound what a
// client that sends slowly, or asks for a destination that never
// answers, can hold.
const (
	handshakeTimeout = 10 * time.Second
	dialTimeout      = 30 * time.Second
)

// SOCKS5 is a SOCKS5 server with CONNECT and UDP ASSOCIATE through the
// tunnel. With Auth set it requires RFC 1929 username/password; without,
// keep it on loopback.
type SOCKS5 struct {
	Tunnel Tunnel
	Auth   Credentials
	Log    *slog.Logger
	// Guard, if set, refuses connections and datagrams to what belongs
	// to vpnfwd alone (reply 2, "not allowed by ruleset").
	Guard *Guard
	// HandshakeTimeout is how long a client has for its greeting, login
	// and request (default 10 s).
	HandshakeTimeout time.Duration
	wg               sync.WaitGroup
}

// Serve accepts on l until it is closed, then waits for open sessions.
func (s *SOCKS5) Serve(l net.Listener) error {
	defer s.wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.session(c); err != nil && s.Log != nil {
				s.Log.Debug("socks5 session", "client", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

func (s *SOCKS5) session(c net.Conn) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(cmp.Or(s.HandshakeTimeout, handshakeTimeout)))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return err
	}
	if hdr[0] != 5 {
		return fmt.Errorf("not SOCKS5 (version %d)", hdr[0])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return err
	}
	if err := s.authenticate(c, methods); err != nil {
		return err
	}
	req := make([]byte, 3)
	if _, err := io.ReadFull(c, req); err != nil {
		return err
	}
	host, port, err := readAddr(c)
	if err != nil {
		reply(c, socksAddrUnsupported, nil)
		return err
	}
	c.SetDeadline(time.Time{})
	switch req[1] {
	case 1:
		return s.connect(c, host, port)
	case 3:
		return s.associate(c, host, port)
	}
	reply(c, socksCmdUnsupported, nil)
	return fmt.Errorf("unsupported command %d", req[1])
}

// authenticate picks the method: username/password (RFC 1929) when Auth
// is set, else none.
func (s *SOCKS5) authenticate(c net.Conn, methods []byte) error {
	if !s.Auth.Required() {
		if !contains(methods, 0) {
			c.Write([]byte{5, 0xff})
			return errors.New("client offers no acceptable auth method (only 'no authentication')")
		}
		_, err := c.Write([]byte{5, 0})
		return err
	}
	if !contains(methods, 2) {
		c.Write([]byte{5, 0xff})
		return errors.New("client offers no username/password authentication, which this proxy requires")
	}
	if _, err := c.Write([]byte{5, 2}); err != nil {
		return err
	}
	user, pass, err := readUserPass(c)
	if err != nil {
		return err
	}
	if !s.Auth.match(user, pass) {
		c.Write([]byte{1, 1})
		return errors.New("wrong username or password")
	}
	_, err = c.Write([]byte{1, 0})
	return err
}

// readUserPass reads an RFC 1929 request: VER 1, ULEN, UNAME, PLEN,
// PASSWD.
func readUserPass(r io.Reader) (string, string, error) {
	b := make([]byte, 2)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", "", err
	}
	if b[0] != 1 {
		return "", "", fmt.Errorf("username/password version %d", b[0])
	}
	user := make([]byte, b[1])
	if _, err := io.ReadFull(r, user); err != nil {
		return "", "", err
	}
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return "", "", err
	}
	pass := make([]byte, b[0])
	if _, err := io.ReadFull(r, pass); err != nil {
		return "", "", err
	}
	return string(user), string(pass), nil
}

func contains(b []byte, v byte) bool {
	for _, x := range b {
		if x == v {
			return true
		}
	}
	return false
}

func (s *SOCKS5) connect(c net.Conn, host string, port uint16) error {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	up, err := s.Guard.dial(ctx, s.Tunnel, c.RemoteAddr().String(), "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		code := byte(socksHostUnreachable)
		switch {
		case errors.Is(err, ErrReserved):
			code = socksNotAllowed
		case isRefusedErr(err):
			code = socksRefused
		}
		reply(c, code, nil)
		return err
	}
	if err := reply(c, socksOK, up.LocalAddr()); err != nil {
		up.Close()
		return err
	}
	splice(c, up, nil, nil, nil)
	return nil
}

func isRefusedErr(err error) bool {
	return err != nil && strings.Contains(err.Error(), "refused")
}

// readAddr reads ATYP, DST.ADDR, DST.PORT.
func readAddr(r io.Reader) (string, uint16, error) {
	t := make([]byte, 1)
	if _, err := io.ReadFull(r, t); err != nil {
		return "", 0, err
	}
	var host string
	switch t[0] {
	case 1, 4:
		n := 4
		if t[0] == 4 {
			n = 16
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", 0, err
		}
		a, _ := netip.AddrFromSlice(b)
		host = a.String()
	case 3:
		l := make([]byte, 1)
		if _, err := io.ReadFull(r, l); err != nil {
			return "", 0, err
		}
		b := make([]byte, l[0])
		if _, err := io.ReadFull(r, b); err != nil {
			return "", 0, err
		}
		host = string(b)
	default:
		return "", 0, fmt.Errorf("address type %d", t[0])
	}
	p := make([]byte, 2)
	if _, err := io.ReadFull(r, p); err != nil {
		return "", 0, err
	}
	return host, binary.BigEndian.Uint16(p), nil
}

// appendAddr appends ATYP, ADDR, PORT for an IP address.
func appendAddr(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap()
	if a.Is4() {
		b = append(b, 1)
	} else {
		b = append(b, 4)
	}
	b = append(b, a.AsSlice()...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

func reply(c net.Conn, code byte, bound net.Addr) error {
	ap := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if bound != nil {
		if p, err := netip.ParseAddrPort(bound.String()); err == nil {
			ap = p
		}
	}
	_, err := c.Write(appendAddr([]byte{5, code, 0}, ap))
	return err
}
