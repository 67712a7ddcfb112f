package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// ErrReserved is wrapped by every refusal of the Guard.
var ErrReserved = errors.New("reserved for vpnfwd itself")

// Guard keeps the proxies' and local forwards' clients away from
// addresses that belong to vpnfwd alone: the provider's control endpoints (the NAT-PMP gateway's
// port 5351, PIA's port API), where one "delete all my mappings" from any
// local program would kill the forwarded port for everyone. Each refused
// client is logged once per destination. A nil *Guard allows everything.
type Guard struct {
	deny func(network string, dst netip.AddrPort) bool
	log  *slog.Logger

	mu     sync.Mutex
	logged map[string]bool
}

// NewGuard makes a guard that refuses what deny says (asked on every
// connection and datagram, so the list may change, as PIA's gateway does
// when it moves to another server).
func NewGuard(deny func(network string, dst netip.AddrPort) bool, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guard{deny: deny, log: log, logged: map[string]bool{}}
}

// Check returns an error wrapping ErrReserved when client may not send to
// dst over network ("tcp" or "udp").
func (g *Guard) Check(client, network string, dst netip.AddrPort) error {
	if g == nil {
		return nil
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if !g.deny(network, dst) {
		return nil
	}
	host := client
	if h, _, err := net.SplitHostPort(client); err == nil {
		host = h
	}
	key := host + " " + network + " " + dst.String()
	g.mu.Lock()
	first := !g.logged[key] && len(g.logged) < 1024
	if first {
		g.logged[key] = true
	}
	g.mu.Unlock()
	if first {
		g.log.Warn("client refused (proxy or local forward): that address is the VPN provider's port-forwarding service, which only vpnfwd may use", "client", client, "network", network, "dst", dst.String())
	}
	return fmt.Errorf("%s %s: %w", network, dst, ErrReserved)
}

// dial resolves addr through t, checks every address it names, and dials
// the one checked (never the name again, which could resolve elsewhere).
func (g *Guard) dial(ctx context.Context, t Tunnel, client, network, addr string) (net.Conn, error) {
	if g == nil {
		return t.DialContext(ctx, network, addr)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portStr, err)
	}
	var ip netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		ip = a
	} else {
		addrs, err := t.Resolve(ctx, host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%s: no address", host)
		}
		ip = addrs[0]
	}
	dst := netip.AddrPortFrom(ip.Unmap(), uint16(port))
	if err := g.Check(client, "tcp", dst); err != nil {
		return nil, err
	}
	return t.DialContext(ctx, network, dst.String())
}

// guardedPacketConn drops, with ErrReserved, the datagrams its client may
// not send.
type guardedPacketConn struct {
	net.PacketConn
	g      *Guard
	client string
}

func (c guardedPacketConn) WriteTo(b []byte, to net.Addr) (int, error) {
	ap, err := netip.ParseAddrPort(to.String())
	if err != nil {
		return 0, err
	}
	if err := c.g.Check(c.client, "udp", ap); err != nil {
		return 0, err
	}
	return c.PacketConn.WriteTo(b, to)
}

// clientKey is the context key of the proxy client's address (for the
// guard's log).
type clientKey struct{}

func withClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

func clientOf(ctx context.Context) string {
	s, _ := ctx.Value(clientKey{}).(string)
	return s
}
