// Package upnp is the UPnP Internet Gateway Device that apps in vpnfwd's
// network namespace (tun mode) or CMD's (exec) find when they look for
// their router: it
// answers SSDP discovery (M-SEARCH to 239.255.255.250:1900, taken to its
// socket on 127.0.0.1 by nft.AnswerLocally) with two root devices,
// InternetGatewayDevice:1 and :2, and serves their descriptions and the
// WANIPConnection service's SOAP control over HTTP. The answer's
// LOCATION is the asking socket's own address (libtorrent binds its
// control connections to its interface, which cannot reach 127.0.0.1),
// and the HTTP server takes connections from this namespace's own
// addresses only (the daemon also drops any that arrive off loopback).
//
// Its mappings are portmap's, in the one table NAT-PMP and PCP share, so
// what an app is told is true and one ownership rule holds for the
// three protocols: the external port an app gets is one the VPN provider
// forwards (AddPortMapping of exactly that port, or AddAnyPortMapping;
// any other port is 718 ConflictInMappingEntry), the internal client must
// be this host (miniupnpd's secure_mode: one namespace is one host), and
// a mapping is renewed, replaced or deleted only by the address and user
// that made it, never by NAT-PMP or PCP (nor theirs by the IGD).
//
// Everything a client sends is a stranger's input: requests are bounded
// (headers 8 KiB, bodies 16 KiB, 10 s), connections capped, documents
// with a DTD refused, and SSDP answers rate-limited.
package upnp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/connlimit"
	"github.com/vpnfwd/vpnfwd/portmap"
)

// SSDPPort is where SSDP discovery is sent (239.255.255.250:1900).
const SSDPPort = 1900

// Gateway is the table of mappings (a *portmap.Server).
type Gateway interface {
	MapIGD(portmap.IGDRequest) (portmap.Mapping, error)
	UnmapIGD(proto string, external uint16, owner portmap.IGDOwner) error
	Mappings() []portmap.Mapping
	PublicIP() netip.Addr
	Held() bool
}

// Config tunes a Server.
type Config struct {
	Gateway Gateway
	// Owner is the user of the client's TCP socket (client, connected to
	// server); ok false when unknown. Nil: mappings are owned by address
	// alone.
	Owner func(client, server netip.AddrPort) (uid uint32, ok bool)
	// Local says whether an address is this namespace's own (a
	// NewInternalClient the IGD accepts); nil: loopback and the
	// addresses of the namespace's interfaces.
	Local func(netip.Addr) bool
	// MaxConns bounds the HTTP connections held at once (default 16).
	MaxConns int
	Log      *slog.Logger
	Now      func() time.Time // tests
}

// Server answers SSDP and the IGD's HTTP requests.
type Server struct {
	cfg   Config
	log   *slog.Logger
	uuid  [16]byte // the devices' UUIDs differ in the last byte
	start time.Time

	mu     sync.Mutex
	tokens float64 // SSDP answers allowed now
	at     time.Time
}

// New makes a server; Serve runs it.
func New(cfg Config) *Server {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Local == nil {
		cfg.Local = interfaceAddr
	}
	s := &Server{cfg: cfg, log: cfg.Log, start: cfg.Now()}
	rand.Read(s.uuid[:])
	s.uuid[6] = s.uuid[6]&0x0f | 0x40 // version 4
	s.uuid[8] = s.uuid[8]&0x3f | 0x80
	return s
}

// Serve answers SSDP on pc and HTTP on l (its address is the LOCATION
// SSDP answers give) until ctx ends; it closes both.
func (s *Server) Serve(ctx context.Context, l net.Listener, pc net.PacketConn) error {
	port := 0
	if ta, ok := l.Addr().(*net.TCPAddr); ok {
		port = ta.Port
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		hs.Close()
		pc.Close()
	})
	wg.Go(func() { s.serveSSDP(pc, port) })
	err := hs.Serve(connlimit.New(localOnly{l, s.cfg.Local}, connlimit.Limits{Max: s.cfg.MaxConns, PerAddr: s.cfg.MaxConns}))
	close(done)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// serveSSDP answers M-SEARCH datagrams on pc until it is closed, naming
// the HTTP server on port at the asker's own address.
func (s *Server) serveSSDP(pc net.PacketConn, port int) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		st, ok := ParseMSearch(buf[:n])
		if !ok {
			continue
		}
		if n := s.matching(st); n == 0 || !s.allow(n) {
			continue
		}
		// Checked after the allowance: Local may ask the kernel.
		host := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if ua, ok := from.(*net.UDPAddr); ok && ua.AddrPort().Addr().Unmap().Is4() && s.cfg.Local(ua.AddrPort().Addr().Unmap()) {
			host = ua.AddrPort().Addr().Unmap()
		}
		replies := s.answers(st, netip.AddrPortFrom(host, uint16(port)).String())
		s.log.Debug("SSDP search answered", "from", from.String(), "st", st, "answers", len(replies))
		for _, r := range replies {
			pc.WriteTo(r, from)
		}
	}
}

// allow takes n SSDP answers from the allowance (100 a second, as many
// at once): a flood of M-SEARCH is not a flood of answers.
func (s *Server) allow(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	const rate, burst = 100, 100
	now := s.cfg.Now()
	if s.at.IsZero() {
		s.tokens = burst
	}
	s.tokens = min(burst, s.tokens+now.Sub(s.at).Seconds()*rate)
	s.at = now
	if s.tokens < float64(n) {
		return false
	}
	s.tokens -= float64(n)
	return true
}

// udn is the UDN of device i (0, 1, 2: IGD:1's root, WAN and WAN
// connection devices; 3, 4, 5: IGD:2's).
func (s *Server) udn(i int) string {
	u := s.uuid
	u[15] += byte(i)
	return fmt.Sprintf("uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// interfaceAddr says whether a is loopback or an address of one of this
// namespace's interfaces.
func interfaceAddr(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// localOnly is a listener that closes at once the connections from
// addresses not this namespace's own.
type localOnly struct {
	net.Listener
	local func(netip.Addr) bool
}

func (l localOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok && l.local(ta.AddrPort().Addr().Unmap()) {
			return c, nil
		}
		c.Close()
	}
}
