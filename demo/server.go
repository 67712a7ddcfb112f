// Package demo is a whole VPN provider in one process, for `vpnfwd demo`
// and the tests: a wireguard-go server over a gVisor netstack with a
// NAT-PMP gateway (RFC 6886, and Proton's conventions), a DNS server, a few
// "internet" hosts (what's-my-IP, echo), and public ports that the
// gateway's mappings open on a loopback address. It sends nothing anywhere
// but loopback. The binary ships it for the demo; internal/testnet adds
// the test-only fakes (PIA's API, certificates) around it.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/tunnel"
	"github.com/vpnfwd/vpnfwd/wg"
)

// Addresses of the simulated network.
var (
	GatewayAddr  = netip.MustParseAddr("10.2.0.1")     // tunnel gateway, DNS, NAT-PMP
	ClientAddr   = netip.MustParseAddr("10.2.0.2")     // first client's tunnel address
	InternetHost = netip.MustParseAddr("198.51.100.1") // whatsmyip.test, echo.test
	PublicIP     = netip.MustParseAddr("203.0.113.1")  // the VPN server's public IP as the world sees it
	GatewayAddr6 = netip.MustParseAddr("fd00:2::1")    // the gateway's IPv6 tunnel address
	PublicBind   = netip.MustParseAddr("127.77.0.1")   // where that public IP's ports are reachable here
)

// Host names the test DNS server answers.
const (
	WhatsMyIPName = "whatsmyip.test"
	EchoName      = "echo.test"
)

// Options configure a Server.
type Options struct {
	Log *slog.Logger
	// NATPMP selects the gateway's behaviour: "generic" (default),
	// "proton", or "off" (no NAT-PMP service: requests are refused).
	NATPMP string
	// Lifetime caps the mapping lifetime the gateway grants (seconds);
	// 0 means 60 s for "proton", 3600 s otherwise.
	Lifetime uint32
	// PublicBind overrides where public ports are opened.
	PublicBind netip.Addr
}

// Server is the fake VPN server. Close stops it.
type Server struct {
	Key      tunnel.PrivateKey
	Stack    *netstack.Stack
	Device   *wg.Device
	Endpoint netip.AddrPort // the WireGuard UDP endpoint (loopback)
	Gateway  *Gateway       // nil when NAT-PMP is off

	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	next     byte                     // next client address octet
	forwards map[uint16][]*publicPort // PIA-style forwards (Forward)
}

// Start brings the server up.
func Start(opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if !opts.PublicBind.IsValid() {
		opts.PublicBind = PublicBind
	}
	key, err := tunnel.NewPrivateKey()
	if err != nil {
		return nil, err
	}
	st, err := netstack.New(netstack.Config{
		Addresses: []netip.Prefix{
			netip.PrefixFrom(GatewayAddr, 24),
			netip.PrefixFrom(InternetHost, 32),
			netip.PrefixFrom(GatewayAddr6, 64),
		},
		Promiscuous: true,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Key: key, Stack: st, log: opts.Log, ctx: ctx, cancel: cancel, next: 2}
	dev, err := wg.New(ctx, st.TUN(), tunnel.WireGuard{PrivateKey: key}, wg.Options{Logger: opts.Log.With("component", "testnet-wg")})
	if err != nil {
		cancel()
		st.Close()
		return nil, err
	}
	s.Device = dev
	port, err := dev.ListenPort()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Endpoint = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	if err := s.startInternet(); err != nil {
		s.Close()
		return nil, err
	}
	if opts.NATPMP != "off" {
		life := opts.Lifetime
		proton := opts.NATPMP == "proton"
		if life == 0 {
			life = 3600
			if proton {
				life = 60
			}
		}
		g, err := startGateway(s, proton, life, opts.PublicBind)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Gateway = g
	}
	return s, nil
}

// NewClient makes a key for a new client, adds it as a peer and returns
// its WireGuard configuration (full tunnel, DNS at the gateway).
func (s *Server) NewClient() (tunnel.WireGuard, error) {
	s.mu.Lock()
	addr := netip.AddrFrom4([4]byte{10, 2, 0, s.next})
	s.next++
	s.mu.Unlock()
	key, err := tunnel.NewPrivateKey()
	if err != nil {
		return tunnel.WireGuard{}, err
	}
	addr6 := netip.AddrFrom16([16]byte{0xfd, 0, 0, 2, 15: addr.As4()[3]})
	if err := s.Device.AddPeer(key.Public(), netip.PrefixFrom(addr, 32), netip.PrefixFrom(addr6, 128)); err != nil {
		return tunnel.WireGuard{}, err
	}
	return tunnel.WireGuard{
		PrivateKey: key,
		Address:    []tunnel.Prefix{tunnel.Prefix(netip.PrefixFrom(addr, 32)), tunnel.Prefix(netip.PrefixFrom(addr6, 128))},
		DNS:        []tunnel.Addr{tunnel.Addr(GatewayAddr)},
		Peers: []tunnel.Peer{{
			PublicKey:           s.Key.Public(),
			Endpoint:            tunnel.Endpoint(s.Endpoint.String()),
			AllowedIPs:          []tunnel.Prefix{tunnel.Prefix(netip.MustParsePrefix("0.0.0.0/0")), tunnel.Prefix(netip.MustParsePrefix("::/0"))},
			PersistentKeepalive: 25,
		}},
	}, nil
}

// WGQuick renders a client configuration as a wg-quick file, the way a
// provider hands it out.
func WGQuick(w tunnel.WireGuard) string {
	var b strings.Builder
	join := func(ps []tunnel.Prefix) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.String())
		}
		return strings.Join(s, ", ")
	}
	fmt.Fprintf(&b, "# vpnfwd test network\n[Interface]\nPrivateKey = %s\nAddress = %s\n", w.PrivateKey.Base64(), join(w.Address))
	for _, d := range w.DNS {
		fmt.Fprintf(&b, "DNS = %s\n", d)
	}
	for _, p := range w.Peers {
		fmt.Fprintf(&b, "\n[Peer]\nPublicKey = %s\nAllowedIPs = %s\nEndpoint = %s\n", p.PublicKey, join(p.AllowedIPs), p.Endpoint)
		if p.PersistentKeepalive > 0 {
			fmt.Fprintf(&b, "PersistentKeepalive = %d\n", p.PersistentKeepalive)
		}
	}
	return b.String()
}

// Close stops the server and everything it opened.
func (s *Server) Close() error {
	s.cancel()
	if s.Gateway != nil {
		s.Gateway.close()
	}
	if s.Device != nil {
		s.Device.Close()
	}
	s.Stack.Close()
	s.wg.Wait()
	return nil
}

func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
}
