package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	proto := ipv4.ProtocolNumber
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		proto = ipv6.ProtocolNumber
	}
	fa := tcpip.FullAddress{NIC: nicID, Port: ap.Port()}
	if ap.Addr().IsValid() && !ap.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFromSlice(ap.Addr().Unmap().AsSlice())
	}
	return fa, proto
}

// DialContext connects through the tunnel. network is "tcp", "tcp4",
// "tcp6", "udp", "udp4" or "udp6"; a host name in address is resolved with
// the tunnel's DNS servers (never the host's resolver).
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if err := s.done(ctx); err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port in %q", address)
	}
	addrs, err := s.lookup(ctx, host, network)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, a := range addrs {
		c, err := s.DialAddr(ctx, network, netip.AddrPortFrom(a, uint16(port)))
		if err == nil {
			return c, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// DialAddr connects to an address through the tunnel without name lookup.
func (s *Stack) DialAddr(ctx context.Context, network string, ap netip.AddrPort) (net.Conn, error) {
	fa, proto := fullAddr(ap)
	switch network {
	case "tcp", "tcp4", "tcp6":
		return gonet.DialContextTCP(ctx, s.stack, fa, proto)
	case "udp", "udp4", "udp6":
		return gonet.DialUDP(s.stack, nil, &fa, proto)
	}
	return nil, fmt.Errorf("dial %s: unsupported network %q", ap, network)
}

// DialTCPFrom connects from a chosen source address (the stack must be
// promiscuous to use an address it does not own). The test network uses it
// to deliver forwarded connections with the remote peer's address.
func (s *Stack) DialTCPFrom(ctx context.Context, from, to netip.AddrPort) (net.Conn, error) {
	lfa, _ := fullAddr(from)
	rfa, proto := fullAddr(to)
	return gonet.DialTCPWithBind(ctx, s.stack, lfa, rfa, proto)
}

// ListenTCP listens on a tunnel address (unspecified address: all of them).
func (s *Stack) ListenTCP(ap netip.AddrPort) (net.Listener, error) {
	fa, proto := fullAddr(ap)
	l, err := gonet.ListenTCP(s.stack, fa, proto)
	if err != nil {
		return nil, fmt.Errorf("listening on tunnel TCP %s: %w", ap, err)
	}
	return l, nil
}

// listenUDPBuffer is the receive buffer of a UDP socket listening in the
// tunnel (a forwarded port: every peer's datagrams share it), gVisor's
// largest: about 3,500 uTP datagrams, 110 ms at 300 Mbit/s, where the
// stack's default (212 KiB) holds 6 ms and drops the rest of a burst
// while the bridge's reader waits for a CPU.
const listenUDPBuffer = 4 << 20

// ListenUDP binds a UDP socket inside the tunnel. Use ReadFrom/WriteTo.
func (s *Stack) ListenUDP(ap netip.AddrPort) (net.PacketConn, error) {
	fa, proto := fullAddr(ap)
	var wq waiter.Queue
	ep, terr := s.stack.NewEndpoint(udp.ProtocolNumber, proto, &wq)
	if terr == nil {
		ep.SocketOptions().SetReceiveBufferSize(listenUDPBuffer, true)
		if terr = ep.Bind(fa); terr != nil {
			ep.Close()
		}
	}
	if terr != nil {
		return nil, fmt.Errorf("listening on tunnel UDP %s: %s", ap, terr)
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

// DialUDPFrom is a UDP socket bound to from and connected to to; with a
// promiscuous stack from may be any address.
func (s *Stack) DialUDPFrom(from, to netip.AddrPort) (net.Conn, error) {
	lfa, _ := fullAddr(from)
	rfa, proto := fullAddr(to)
	return gonet.DialUDP(s.stack, &lfa, &rfa, proto)
}
