// Package forward moves traffic between the tunnel and the host: the
// inbound bridge takes connections that arrive on the forwarded port inside
// the tunnel to the local service (TCP and UDP), and the outbound proxies
// (SOCKS5, HTTP) let local apps reach the internet through the tunnel and
// never around it.
package forward

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Route is one forwarded port: connections arriving at Listen inside the
// tunnel go to the target host on Target. Proto limits it to "tcp" or
// "udp" (a gateway that forwards them on different ports); "" is both.
type Route struct {
	Listen uint16
	Target uint16
	Proto  string
}

// TCPRequest is an incoming tunnel connection whose handshake is still
// pending (netstack.TCPRequest).
type TCPRequest interface {
	LocalAddr() netip.AddrPort
	RemoteAddr() netip.AddrPort
	Accept() (net.Conn, error)
	Reject()
	// Crowded reports that handshakes are piling up (a flood): nothing
	// should be spent on the request before its handshake completes.
	Crowded() bool
}

// PacketListener binds UDP sockets inside the tunnel.
type PacketListener interface {
	ListenUDP(netip.AddrPort) (net.PacketConn, error)
}

// BridgeConfig configures a Bridge.
type BridgeConfig struct {
	TargetHost  string // the local service's host, e.g. 127.0.0.1
	TCP, UDP    bool
	UDPIdle     time.Duration // default 2 min
	MaxUDPFlows int           // UDP peers (flows) at once; default 2048
	// MaxUDPFlowsPerSource bounds the flows of one remote address
	// (default 64).
	MaxUDPFlowsPerSource int
	// NewUDPFlowsPerSecond bounds how fast new UDP peers are taken in
	// (default 500, with as many at once); datagrams from new peers over
	// it are dropped.
	NewUDPFlowsPerSecond int
	// MaxConns bounds the bridged TCP connections (default 2048), and
	// MaxConnsPerSource those from one remote address (default 128). A
	// new connection over a bound closes the one idle the longest.
	MaxConns, MaxConnsPerSource int
	// IdleTimeout closes a TCP connection that moved no byte either way
	// for this long (default 15 min).
	IdleTimeout time.Duration
	DialTimeout time.Duration // default 5 s
	// PerPeer gives each remote peer its own loopback source address
	// toward the service (see PeerSource), for services that limit
	// connections per address. Needs a loopback TargetHost.
	PerPeer bool
	Log     *slog.Logger
}

// Stats are the bridge's counters.
type Stats struct {
	TCPOpen    int64  `json:"tcp_open"`
	TCPTotal   int64  `json:"tcp_total"`
	TCPRefused int64  `json:"tcp_refused"`
	TCPEvicted int64  `json:"tcp_evicted"` // closed to make room, or idle too long
	UDPFlows   int64  `json:"udp_flows"`
	UDPPackets int64  `json:"udp_packets"`
	UDPRefused int64  `json:"udp_refused"` // datagrams from new peers over the new-flow rate
	BytesIn    uint64 `json:"bytes_in"`    // from the tunnel to the service
	BytesOut   uint64 `json:"bytes_out"`   // from the service to the tunnel
}

// Bridge forwards the current routes. SetRoutes moves it when the port
// changes; Close stops everything and waits for its goroutines.
type Bridge struct {
	cfg BridgeConfig
	in  PacketListener
	log *slog.Logger

	mu     sync.Mutex
	tcp    map[uint16]uint16 // TCP routes: listen port -> target port
	udpTo  map[uint16]uint16 // UDP routes
	udp    map[uint16]*udpListener
	tcpL   map[uint16]net.Listener // kernel listeners (StreamListener)
	closed bool
	wg     sync.WaitGroup
	conns  *connTable
	stop   chan struct{} // closed by Close: the idle sweep ends

	tcpOpen, tcpTotal, tcpRefused, udpFlows, udpPackets, udpRefused atomic.Int64
	bytesIn, bytesOut                                               atomic.Uint64
}

// NewBridge makes a bridge with no routes.
func NewBridge(in PacketListener, cfg BridgeConfig) *Bridge {
	if cfg.UDPIdle == 0 {
		cfg.UDPIdle = 2 * time.Minute
	}
	if cfg.MaxUDPFlows <= 0 {
		cfg.MaxUDPFlows = 2048
	}
	if cfg.MaxUDPFlowsPerSource <= 0 {
		cfg.MaxUDPFlowsPerSource = 64
	}
	if cfg.NewUDPFlowsPerSecond <= 0 {
		cfg.NewUDPFlowsPerSecond = 500
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 2048
	}
	if cfg.MaxConnsPerSource <= 0 {
		cfg.MaxConnsPerSource = 128
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 15 * time.Minute
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{cfg: cfg, in: in, log: cfg.Log, tcp: map[uint16]uint16{}, udpTo: map[uint16]uint16{}, udp: map[uint16]*udpListener{}, tcpL: map[uint16]net.Listener{},
		conns: newConnTable(cfg.MaxConns, cfg.MaxConnsPerSource), stop: make(chan struct{})}
	b.wg.Add(1)
	go b.sweepIdle()
	return b
}

// sweepIdle closes TCP connections idle past IdleTimeout until Close.
func (b *Bridge) sweepIdle() {
	defer b.wg.Done()
	every := max(b.cfg.IdleTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.conns.closeIdle(b.cfg.IdleTimeout)
		}
	}
}

// contain recovers a panic on a goroutine serving one remote peer, so one
// bad connection never takes the process down. Use as a deferred call.
func (b *Bridge) contain(what string, peer netip.AddrPort) {
	if v := recover(); v != nil {
		b.log.Error("panic serving a remote peer; dropped it", "what", what, "peer", peer.String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
}

// SetRoutes replaces the forwarded ports: listeners for ports no longer
// forwarded close, new ones open.
func (b *Bridge) SetRoutes(routes []Route) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return net.ErrClosed
	}
	tcp, udp := map[uint16]uint16{}, map[uint16]uint16{}
	for _, r := range routes {
		if r.Listen == 0 {
			continue
		}
		t := r.Target
		if t == 0 {
			t = r.Listen
		}
		if r.Proto != "udp" && b.cfg.TCP {
			tcp[r.Listen] = t
		}
		if r.Proto != "tcp" && b.cfg.UDP {
			udp[r.Listen] = t
		}
	}
	for port, l := range b.udp {
		if t, ok := udp[port]; !ok || t != b.udpTo[port] {
			l.close()
			delete(b.udp, port)
		}
	}
	b.tcp, b.udpTo = tcp, udp
	var firstErr error
	if sl, ok := b.in.(StreamListener); ok {
		firstErr = b.setTCPListeners(sl)
	}
	for port, target := range udp {
		if _, ok := b.udp[port]; ok {
			continue
		}
		l, err := b.listenUDP(port, target)
		if err != nil {
			firstErr = err
			continue
		}
		b.udp[port] = l
	}
	return firstErr
}

func (b *Bridge) target(port uint16) string {
	return net.JoinHostPort(b.cfg.TargetHost, strconv.Itoa(int(port)))
}

// route finds the target for a TCP connection to listen and, when there
// is one, counts the connection in b.wg (under the lock, so Close never
// misses it); the caller must call b.wg.Done.
func (b *Bridge) route(listen uint16) (uint16, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tcp[listen]
	ok = ok && !b.closed
	if ok {
		b.wg.Add(1)
	}
	return t, ok
}

// Stats returns the counters.
func (b *Bridge) Stats() Stats {
	return Stats{
		TCPOpen: b.tcpOpen.Load(), TCPTotal: b.tcpTotal.Load(), TCPRefused: b.tcpRefused.Load(),
		TCPEvicted: b.conns.evicted.Load(), UDPFlows: b.udpFlows.Load(), UDPRefused: b.udpRefused.Load(), UDPPackets: b.udpPackets.Load(),
		BytesIn: b.bytesIn.Load(), BytesOut: b.bytesOut.Load(),
	}
}

// Close stops the listeners, closes every bridged connection and flow
// (remote peers holding them open do not hold Close up), and waits for
// their goroutines. Close is safe to call twice.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	for port, l := range b.udp {
		l.close()
		delete(b.udp, port)
	}
	for port, l := range b.tcpL {
		l.Close()
		delete(b.tcpL, port)
	}
	b.mu.Unlock()
	b.conns.closeAll()
	b.wg.Wait()
	return nil
}

func (b *Bridge) String() string {
	return fmt.Sprintf("bridge to %s", b.cfg.TargetHost)
}

// PeerSource is the loopback address a remote peer's traffic comes from
// when PerPeer is on: 127.x.y.z, stable for the peer's IP, never
// 127.0.0.x (127.0.0.1 stays the host's own).
func PeerSource(peer netip.Addr) netip.Addr {
	h := fnv.New32a()
	h.Write(peer.AsSlice())
	v := h.Sum32()
	x, y, z := byte(v>>16), byte(v>>8), byte(v)
	if x == 0 {
		x = 1
	}
	if z == 0 || z == 255 {
		z = 1
	}
	return netip.AddrFrom4([4]byte{127, x, y, z})
}

// localAddr is the source for a peer's connection to the service (nil:
// let the kernel choose).
func (b *Bridge) localAddr(peer netip.Addr) netip.Addr {
	if !b.cfg.PerPeer {
		return netip.Addr{}
	}
	return PeerSource(peer)
}

// adminPorts are local services that commonly trust connections from
// loopback: torrent clients' web UIs, remote shells and desktops, Docker's
// API, vpnfwd's own API.
var adminPorts = map[uint16]string{
	22: "SSH", 2375: "Docker API", 2376: "Docker API", 3389: "RDP", 5900: "VNC",
	8080: "qBittorrent's Web UI", 8112: "Deluge's web UI", 9091: "Transmission's RPC", 9070: "vpnfwd's API",
}

// LoopbackTrustWarning says why bridging to host:port may be a mistake:
// every remote peer arrives from a loopback address (127.0.0.1, or
// 127.x.y.z with PerPeer), so a service there that trusts loopback (as
// qBittorrent's "bypass authentication for localhost" does) trusts the
// internet. "" when the port is not a well-known admin port.
func LoopbackTrustWarning(host string, port uint16) string {
	what, ok := adminPorts[port]
	if !ok {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil && !a.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("the forwarded port leads to %s:%d, commonly %s: remote peers reach it from 127.0.0.1, so if it trusts local connections it now trusts the internet; "+
		"forward to the service's peer port instead, or use --per-peer-source or tun mode", host, port, what)
}
