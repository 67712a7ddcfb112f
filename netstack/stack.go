// Package netstack owns the gVisor TCP/IP stack that sits on the inside of the
// WireGuard tunnel. It implements tun.Device for wireguard-go, and offers Go
// sockets (Dial, Listen) and a TCP handler that sees each incoming SYN before
// the handshake completes. gVisor's tcpip.Error values are turned into Go
// errors here and never leak out of the package.
package netstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const nicID = 1

// Config describes the stack's side of the tunnel.
type Config struct {
	// Addresses are the tunnel addresses (the wg-quick Address lines).
	Addresses []netip.Prefix
	// DNS servers used by Resolve and by Dial for host names.
	DNS []netip.Addr
	// MTU of the tunnel; 1420 when zero.
	MTU int
	// HandshakeTimeout aborts an incoming handshake the peer has not
	// completed by then (default 8 s: the SYN-ACK sent three times).
	// gVisor alone would keep retrying for 127 s.
	HandshakeTimeout time.Duration
	// MaxPendingHandshakes bounds the incoming TCP handshakes in progress
	// (default 1024); MaxPendingPerSource bounds them per remote address
	// (default 64). SYNs over either limit are ignored, as a full SYN
	// queue would.
	MaxPendingHandshakes, MaxPendingPerSource int
	// Log hears what goes wrong inside the stack (recovered panics).
	Log *slog.Logger
	// Promiscuous makes the stack accept packets for any destination
	// address and send from any source address. A VPN server (the test
	// network) needs it; a client does not.
	Promiscuous bool
}

// Stack is a gVisor network stack wired to wireguard-go as its TUN device.
// Close releases it; Close is safe to call twice.
type Stack struct {
	cfg    Config
	stack  *stack.Stack
	link   *linkEndpoint
	taken  []*stack.PacketBuffer // tunDevice.Read's scratch
	events chan tun.Event
	notify chan struct{}
	closed chan struct{}
	once   sync.Once

	log        *slog.Logger
	adm        *admission
	mu         sync.RWMutex
	tcpHandler func(*TCPRequest)
}

// New builds a stack with the given addresses and routes everything through
// the tunnel.
func New(cfg Config) (*Stack, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1420
	}
	if cfg.MaxPendingHandshakes <= 0 {
		cfg.MaxPendingHandshakes = 1024
	}
	if cfg.MaxPendingPerSource <= 0 {
		cfg.MaxPendingPerSource = 64
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 8 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	tcpProto, tr := tcpProtocol()
	s := &Stack{
		cfg: cfg,
		log: cfg.Log,
		adm: newAdmission(cfg.MaxPendingHandshakes, cfg.MaxPendingPerSource, cfg.HandshakeTimeout),
		stack: stack.New(stack.Options{
			NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
			TransportProtocols: []stack.TransportProtocolFactory{tcpProto, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
			// A promiscuous NIC would count every source address as its
			// own and drop the packet as a martian if HandleLocal were on.
			HandleLocal: !cfg.Promiscuous,
		}),
		events: make(chan tun.Event, 4),
		notify: make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	if err := s.tune(); err != nil {
		return nil, err
	}
	s.link = newLinkEndpoint(cfg.MTU, s.wake)
	if tr != nil {
		tr.link.Store(s.link)
	}
	if err := s.stack.CreateNIC(nicID, s.link); err != nil {
		return nil, fmt.Errorf("creating NIC: %s", err)
	}
	var has4, has6 bool
	for _, p := range cfg.Addresses {
		has4, has6 = has4 || p.Addr().Is4(), has6 || p.Addr().Is6()
		if err := s.addAddress(p); err != nil {
			return nil, err
		}
	}
	if has4 || cfg.Promiscuous {
		s.stack.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	}
	if has6 || cfg.Promiscuous {
		s.stack.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	}
	if cfg.Promiscuous {
		s.stack.SetPromiscuousMode(nicID, true)
		s.stack.SetSpoofing(nicID, true)
	}
	// gVisor's own in-flight cap only backs ours up (2×max, see
	// admission): over our limits a SYN is answered (ignored) at once and
	// leaves its table.
	fwd := tcp.NewForwarder(s.stack, 0, 3*cfg.MaxPendingHandshakes, s.handleTCP)
	s.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	s.events <- tun.EventUp
	return s, nil
}

// tune sets TCP options for bulk throughput over a tunnel.
func (s *Stack) tune() error {
	sack := tcpip.TCPSACKEnabled(true)
	mod := tcpip.TCPModerateReceiveBufferOption(true)
	// CUBIC, but an accepted connection on a short path runs Reno (see
	// congestionControlFor).
	cc := tcpip.CongestionControlOption("cubic")
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: 1 << 20, Max: 8 << 20}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: 1 << 20, Max: 6 << 20}
	// RACK-TLP off: loss is found by SACK, duplicate ACKs and the
	// retransmission timer. gVisor's tail loss probe fires 2 SRTTs after
	// the last ACK (a millisecond or two here) and cuts the window unless
	// the ACK covering the probe carries a DSACK: on a path that lost
	// nothing it resent 16-23 segments per 5-s upload, 900 with 50
	// connections (bench/whole-path.sh; rack.go detectTLPRecovery;
	// tailscale turned RACK off too, tailscale PR 14896). Without it the
	// link queue must not overflow: see linkEndpoint.WritePackets.
	rec := tcpip.TCPRecovery(0)
	for _, o := range []tcpip.SettableTransportProtocolOption{&sack, &mod, &cc, &rcv, &snd, &rec} {
		if err := s.stack.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fmt.Errorf("tuning TCP (%T): %s", o, err)
		}
	}
	return nil
}

// Addresses returns the stack's tunnel addresses.
func (s *Stack) Addresses() []netip.Prefix {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg.Addresses
}

// SetAddresses replaces the tunnel addresses (a provider registered a new
// key and was given another address). Sockets bound to an old address stop
// working; listeners on the unspecified address carry on.
func (s *Stack) SetAddresses(addrs []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.cfg.Addresses {
		if !slices.Contains(addrs, p) {
			s.stack.RemoveAddress(nicID, tcpip.AddrFromSlice(p.Addr().AsSlice()))
		}
	}
	for _, p := range addrs {
		if slices.Contains(s.cfg.Addresses, p) {
			continue
		}
		if err := s.addAddress(p); err != nil {
			return err
		}
	}
	s.cfg.Addresses = addrs
	return nil
}

// addAddress gives the NIC a tunnel address.
func (s *Stack) addAddress(p netip.Prefix) error {
	proto := ipv4.ProtocolNumber
	if p.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	pa := tcpip.ProtocolAddress{
		Protocol: proto,
		AddressWithPrefix: tcpip.AddressWithPrefix{
			Address:   tcpip.AddrFromSlice(p.Addr().AsSlice()),
			PrefixLen: p.Bits(),
		},
	}
	if err := s.stack.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("adding address %s: %s", p, err)
	}
	return nil
}

// DNS returns the DNS servers the stack resolves names with.
func (s *Stack) DNS() []netip.Addr { return s.cfg.DNS }

// Close tears the stack down. Open sockets fail afterwards.
func (s *Stack) Close() error {
	s.once.Do(func() {
		close(s.closed)
		// Handshakes in progress end now, not when their peers give up.
		s.adm.abortAll()
		s.stack.Close()
		s.link.Close()
		s.stack.Wait()
		close(s.events)
	})
	return nil
}

var errClosed = errors.New("netstack closed")

func (s *Stack) done(ctx context.Context) error {
	select {
	case <-s.closed:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	default:
		return nil
	}
}
