package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vpnfwd/vpnfwd/connlimit"
)

// LocalSpec is one local forward (what `ssh -L`, wireproxy's
// TCPClientTunnel and onetun do): a listener on this host whose
// connections (or datagrams) go to one fixed host and port through the
// tunnel.
type LocalSpec struct {
	Bind netip.AddrPort // where it listens on this host
	Host string         // the destination: a name (looked up through the tunnel) or an address
	Port uint16
	UDP  bool
}

// String is the spec as --local-forward takes it.
func (s LocalSpec) String() string {
	v := s.Bind.String() + "=" + net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port)))
	if s.UDP {
		v += "/udp"
	}
	return v
}

// Proto is "tcp" or "udp".
func (s LocalSpec) Proto() string {
	if s.UDP {
		return "udp"
	}
	return "tcp"
}

// ParseLocalForward reads [BIND:]PORT=HOST:PORT[/udp] (BIND defaults to
// 127.0.0.1; an IPv6 BIND or HOST goes in brackets; PORT 0 takes any free
// port).
func ParseLocalForward(v string) (LocalSpec, error) {
	var s LocalSpec
	bad := func(why string) (LocalSpec, error) {
		return LocalSpec{}, fmt.Errorf("local forward %q: %s (want [BIND:]PORT=HOST:PORT[/udp], e.g. 127.0.0.1:5432=db.example:5432 or 5353=1.1.1.1:53/udp)", v, why)
	}
	rest := strings.TrimSpace(v)
	if r, ok := strings.CutSuffix(rest, "/udp"); ok {
		rest, s.UDP = r, true
	} else if r, ok := strings.CutSuffix(rest, "/tcp"); ok {
		rest = r
	} else if i := strings.LastIndex(rest, "/"); i >= 0 {
		return bad("protocol " + rest[i+1:] + " is neither tcp nor udp")
	}
	from, to, ok := strings.Cut(rest, "=")
	if !ok {
		return bad("no '='")
	}
	bind := "127.0.0.1"
	port := from
	if h, p, err := net.SplitHostPort(from); err == nil {
		bind, port = h, p
	}
	a, err := netip.ParseAddr(bind)
	if err != nil {
		return bad("listen address " + bind + " is not an IP address")
	}
	lp, err := strconv.ParseUint(port, 10, 16)
	if err != nil { // 0: any free port (status says which)
		return bad("listen port " + port + " is not 1-65535")
	}
	s.Bind = netip.AddrPortFrom(a.Unmap(), uint16(lp))
	host, dport, err := net.SplitHostPort(to)
	if err != nil || host == "" {
		return bad("destination " + to + " is not HOST:PORT")
	}
	dp, err := strconv.ParseUint(dport, 10, 16)
	if err != nil || dp == 0 {
		return bad("destination port " + dport + " is not 1-65535")
	}
	s.Host, s.Port = host, uint16(dp)
	return s, nil
}

// LocalConfig bounds a local forward.
type LocalConfig struct {
	// MaxConns bounds its TCP connections (default 256), counted from
	// accept (dials in progress too), a quarter of them kept for clients
	// on this host; over it a connection is closed as it arrives.
	// MaxConnsPerSource bounds one client address's (default 64): off
	// this host as they arrive, on loopback by closing that address's
	// connection idle the longest.
	MaxConns, MaxConnsPerSource int
	// MaxPendingDials bounds the dials through the tunnel in progress at
	// once (default 32). Other connections wait for their turn; a
	// connection not connected DialTimeout after it was accepted is
	// closed. A destination that never answers thus holds at most
	// MaxConns connections, each for DialTimeout.
	MaxPendingDials int
	// IdleTimeout closes a TCP connection or UDP flow that moved nothing
	// for this long (default 15 min for TCP, 2 min for UDP).
	IdleTimeout, UDPIdle time.Duration
	// MaxUDPFlows bounds the UDP clients at once (default 256).
	MaxUDPFlows int
	DialTimeout time.Duration // default 10 s
	// Allow are the client addresses that may use it besides loopback
	// (for a forward listening off loopback); others are refused.
	Allow []netip.Prefix
	Log   *slog.Logger
}

// LocalStats are a local forward's counters.
type LocalStats struct {
	Listen   string `json:"listen"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Open     int64  `json:"open"`    // TCP connections, or UDP flows
	Total    int64  `json:"total"`   // since start
	Failed   int64  `json:"failed"`  // dials (or lookups) through the tunnel that failed
	Refused  int64  `json:"refused"` // connections and datagrams not forwarded: client not allowed (off loopback, not in Allow), over a cap, or a destination vpnfwd keeps to itself (Guard)
	BytesOut uint64 `json:"bytes_out"`
	BytesIn  uint64 `json:"bytes_in"`
}

// Local is a running local forward. ListenLocal opens its socket (so a
// busy port fails at start), Serve forwards through a tunnel until Close.
type Local struct {
	spec LocalSpec
	cfg  LocalConfig
	log  *slog.Logger
	l    *connlimit.Listener
	pc   net.PacketConn

	conns *connTable
	dials chan struct{} // one token per dial in progress
	wg    sync.WaitGroup
	stop  chan struct{}
	once  sync.Once

	mu    sync.Mutex
	flows map[netip.AddrPort]*localFlow

	open, total, failed, refused atomic.Int64
	out, in                      atomic.Uint64
}

// ListenLocal opens spec's socket on this host.
func ListenLocal(spec LocalSpec, cfg LocalConfig) (*Local, error) {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 256
	}
	if cfg.MaxConnsPerSource <= 0 {
		cfg.MaxConnsPerSource = 64
	}
	if cfg.MaxPendingDials <= 0 {
		cfg.MaxPendingDials = 32
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 15 * time.Minute
	}
	if cfg.UDPIdle <= 0 {
		cfg.UDPIdle = 2 * time.Minute
	}
	if cfg.MaxUDPFlows <= 0 {
		cfg.MaxUDPFlows = 256
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := &Local{spec: spec, cfg: cfg, log: cfg.Log, stop: make(chan struct{}), flows: map[netip.AddrPort]*localFlow{},
		conns: newConnTable(cfg.MaxConns, cfg.MaxConnsPerSource), dials: make(chan struct{}, cfg.MaxPendingDials)}
	if spec.UDP {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(spec.Bind))
		if err != nil {
			return nil, fmt.Errorf("local forward %s: %w", spec, err)
		}
		l.pc = pc
		return l, nil
	}
	tl, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(spec.Bind))
	if err != nil {
		return nil, fmt.Errorf("local forward %s: %w", spec, err)
	}
	l.l = connlimit.New(tl, connlimit.Limits{Max: cfg.MaxConns, PerAddr: cfg.MaxConnsPerSource, Reserve: cfg.MaxConns / 4})
	return l, nil
}

// Addr is where it listens.
func (l *Local) Addr() net.Addr {
	if l.pc != nil {
		return l.pc.LocalAddr()
	}
	return l.l.Addr()
}

// Spec is what it forwards.
func (l *Local) Spec() LocalSpec { return l.spec }

// Stats are its counters.
func (l *Local) Stats() LocalStats {
	refused := l.refused.Load()
	if l.l != nil {
		refused += l.l.Refused()
	}
	return LocalStats{Listen: l.Addr().String(), To: net.JoinHostPort(l.spec.Host, strconv.Itoa(int(l.spec.Port))), Protocol: l.spec.Proto(),
		Open: l.open.Load(), Total: l.total.Load(), Failed: l.failed.Load(), Refused: refused, BytesOut: l.out.Load(), BytesIn: l.in.Load()}
}

// Serve forwards through t until Close; it returns when all its
// connections and flows are done. A non-nil g refuses destinations that
// belong to vpnfwd alone (a connection is closed, a datagram dropped),
// as it does for the proxies.
func (l *Local) Serve(t Tunnel, g *Guard) {
	defer l.wg.Wait()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				l.conns.closeIdle(l.cfg.IdleTimeout)
				l.expireFlows()
			}
		}
	}()
	if l.pc != nil {
		l.serveUDP(t, g)
		return
	}
	for {
		c, err := l.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("local forward: accept", "listen", l.spec.Bind.String(), "err", err)
			select {
			case <-l.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if !l.allowed(unmapped(c.RemoteAddr()).Addr()) {
			l.refused.Add(1)
			c.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.handleTCP(t, g, c)
		}()
	}
}

// Close stops listening and ends every connection and flow.
func (l *Local) Close() {
	l.once.Do(func() {
		close(l.stop)
		if l.l != nil {
			l.l.Close()
		}
		if l.pc != nil {
			l.pc.Close()
		}
		l.conns.closeAll()
		l.mu.Lock()
		for _, f := range l.flows {
			f.up.Close()
		}
		l.mu.Unlock()
	})
}

// allowed: loopback, or a client in Allow.
func (l *Local) allowed(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range l.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *Local) dest() string { return net.JoinHostPort(l.spec.Host, strconv.Itoa(int(l.spec.Port))) }

// handleTCP dials the destination through the tunnel (and g) for one
// local client and splices them; a panic costs this connection only.
func (l *Local) handleTCP(t Tunnel, g *Guard, c net.Conn) {
	client := unmapped(c.RemoteAddr())
	defer func() {
		if r := recover(); r != nil {
			c.Close()
			l.log.Error("local forward: connection failed (contained)", "client", client.String(), "panic", fmt.Sprint(r))
		}
	}()
	up, err := l.dial(t, g, client.String())
	if err != nil {
		if errors.Is(err, ErrReserved) || errors.Is(err, errDialsBusy) {
			l.refused.Add(1) // the guard logs its refusals; busy ones would flood the log
		} else {
			l.failed.Add(1)
			l.log.Warn("local forward: no connection through the tunnel", "to", l.dest(), "client", client.String(), "err", err)
		}
		c.Close()
		return
	}
	b := &bridged{peer: client.Addr(), remote: c, local: up}
	if !l.conns.add(b) {
		b.close()
		return
	}
	l.open.Add(1)
	l.total.Add(1)
	defer l.open.Add(-1)
	defer l.conns.remove(b)
	splice(c, up, &l.out, &l.in, b.touch)
}

// errDialsBusy: a connection's DialTimeout passed while it waited for one
// of the MaxPendingDials dials.
var errDialsBusy = errors.New("every dial slot stayed busy")

// dial dials the destination, once one of the MaxPendingDials dials is
// free, within DialTimeout in all (or until Close).
func (l *Local) dial(t Tunnel, g *Guard, client string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	select {
	case l.dials <- struct{}{}:
		defer func() { <-l.dials }()
	case <-ctx.Done():
		return nil, errDialsBusy
	}
	return g.dial(ctx, t, client, "tcp", l.dest())
}

// localFlow is one local UDP client's socket through the tunnel.
type localFlow struct {
	client netip.AddrPort
	dst    netip.AddrPort
	up     net.PacketConn
	active atomic.Int64
}

// serveUDP takes datagrams from local clients, each client to the
// destination from a tunnel socket of its own; answers from the
// destination (only) go back to that client.
func (l *Local) serveUDP(t Tunnel, g *Guard) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := l.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-l.stop:
				return
			default:
			}
			continue
		}
		client := addrPortOf(from)
		if !l.allowed(client.Addr()) {
			l.refused.Add(1)
			continue
		}
		f := l.flow(t, g, client)
		if f == nil {
			continue
		}
		f.active.Store(time.Now().UnixNano())
		if _, err := f.up.WriteTo(buf[:n], net.UDPAddrFromAddrPort(f.dst)); err == nil {
			l.out.Add(uint64(n))
		} else if errors.Is(err, ErrReserved) {
			l.refused.Add(1)
		}
	}
}

// flow finds or makes client's flow (nil when it cannot: the lookup
// failed, the guard refuses the destination, or the table is full of
// active flows). A flow's socket asks g on every datagram, since what g
// refuses may change.
func (l *Local) flow(t Tunnel, g *Guard, client netip.AddrPort) *localFlow {
	l.mu.Lock()
	f := l.flows[client]
	full := len(l.flows) >= l.cfg.MaxUDPFlows
	l.mu.Unlock()
	if f != nil {
		return f
	}
	if full && !l.evictIdlestFlow() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.DialTimeout)
	addrs, err := t.Resolve(ctx, l.spec.Host)
	cancel()
	if err != nil || len(addrs) == 0 {
		l.failed.Add(1)
		l.log.Warn("local forward: cannot look up the destination through the tunnel", "to", l.dest(), "err", err)
		return nil
	}
	dst := netip.AddrPortFrom(addrs[0].Unmap(), l.spec.Port)
	for _, a := range addrs {
		if a.Unmap().Is4() { // the tunnel's IPv4 side first, as the dialers do
			dst = netip.AddrPortFrom(a.Unmap(), l.spec.Port)
			break
		}
	}
	if err := g.Check(client.String(), "udp", dst); err != nil {
		l.refused.Add(1)
		return nil
	}
	any := netip.IPv4Unspecified()
	if dst.Addr().Is6() {
		any = netip.IPv6Unspecified()
	}
	up, err := t.ListenUDP(netip.AddrPortFrom(any, 0))
	if err != nil {
		l.failed.Add(1)
		l.log.Warn("local forward: no UDP socket through the tunnel", "err", err)
		return nil
	}
	if g != nil {
		up = guardedPacketConn{PacketConn: up, g: g, client: client.String()}
	}
	f = &localFlow{client: client, dst: dst, up: up}
	f.active.Store(time.Now().UnixNano())
	l.mu.Lock()
	select {
	case <-l.stop:
		l.mu.Unlock()
		up.Close()
		return nil
	default:
	}
	l.flows[client] = f
	l.wg.Add(1)
	l.mu.Unlock()
	l.open.Add(1)
	l.total.Add(1)
	go func() {
		defer l.wg.Done()
		l.replies(f)
	}()
	return f
}

// replies sends what the destination answers back to the client.
func (l *Local) replies(f *localFlow) {
	defer func() {
		f.up.Close()
		l.mu.Lock()
		if l.flows[f.client] == f {
			delete(l.flows, f.client)
		}
		l.mu.Unlock()
		l.open.Add(-1)
	}()
	buf := make([]byte, 64<<10)
	to := net.UDPAddrFromAddrPort(f.client)
	for {
		n, from, err := f.up.ReadFrom(buf)
		if err != nil {
			return
		}
		if src := addrPortOf(from); src.Addr().Unmap() != f.dst.Addr() || src.Port() != f.dst.Port() {
			continue // only the destination answers through this flow
		}
		f.active.Store(time.Now().UnixNano())
		if _, err := l.pc.WriteTo(buf[:n], to); err == nil {
			l.in.Add(uint64(n))
		}
	}
}

// expireFlows closes the flows idle longer than UDPIdle.
func (l *Local) expireFlows() {
	limit := time.Now().Add(-l.cfg.UDPIdle).UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.flows {
		if f.active.Load() < limit {
			f.up.Close() // replies returns and removes it
		}
	}
}

// evictIdlestFlow closes the flow idle the longest to make room; false if
// every flow moved something in the last second.
func (l *Local) evictIdlestFlow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	var idlest *localFlow
	for _, f := range l.flows {
		if idlest == nil || f.active.Load() < idlest.active.Load() {
			idlest = f
		}
	}
	if idlest == nil || time.Since(time.Unix(0, idlest.active.Load())) < time.Second {
		return idlest == nil
	}
	idlest.up.Close()
	delete(l.flows, idlest.client)
	return true
}
