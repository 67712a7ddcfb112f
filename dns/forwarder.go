// Package dns is vpnfwd's DNS forwarder: it answers on a local address,
// over UDP and TCP, by asking the tunnel's DNS servers through the tunnel
// (whichever data plane carries it). Queries and answers are relayed as
// they are, so EDNS options, DNSSEC records and flags pass untouched; a
// truncated answer is relayed truncated to a UDP client (which then asks
// over TCP, as resolvers do) and fetched over TCP for a TCP client.
package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Dialer connects through the tunnel (netstack.Stack).
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Forwarder relays DNS queries to Upstreams through Dialer. The zero
// values of the tuning fields pick the defaults. ServeUDP and ServeTCP
// return when their socket is closed, after their queries are done.
type Forwarder struct {
	Upstreams []netip.Addr
	Dialer    Dialer
	Log       *slog.Logger
	// Timeout bounds one try at one upstream (2 s); Attempts is how many
	// rounds over all upstreams (2).
	Timeout  time.Duration
	Attempts int
	// MaxInFlight bounds the queries being answered at once (256), and
	// MaxConns the TCP clients (64).
	MaxInFlight, MaxConns int
	// Allow are the networks whose clients are answered besides loopback
	// (nil: loopback only). PerClient is how many queries a second one
	// client address may ask (50, with bursts of twice that); beyond, its
	// queries are dropped.
	Allow     []netip.Prefix
	PerClient int

	once     sync.Once
	inFlight chan struct{}
	conns    chan struct{}
	rate     rateTable
}

// admit says whether a query from addr is answered: an allowed client
// within its rate.
func (f *Forwarder) admit(addr net.Addr) bool {
	var a netip.Addr
	switch t := addr.(type) {
	case *net.UDPAddr:
		a, _ = netip.AddrFromSlice(t.IP)
	case *net.TCPAddr:
		a, _ = netip.AddrFromSlice(t.IP)
	default:
		if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
			a = ap.Addr()
		}
	}
	a = a.Unmap()
	if !a.IsValid() {
		return false
	}
	if !a.IsLoopback() && !slices.ContainsFunc(f.Allow, func(p netip.Prefix) bool { return p.Contains(a) }) {
		return false
	}
	return f.rate.take(a, f.PerClient, time.Now())
}

// rateTable is a token bucket per client address, bounded in size.
type rateTable struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func (r *rateTable) take(a netip.Addr, perSec int, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buckets == nil || len(r.buckets) > 4096 {
		r.buckets = map[netip.Addr]*bucket{} // bounded: forget everyone
	}
	b := r.buckets[a]
	if b == nil {
		b = &bucket{tokens: float64(2 * perSec), at: now}
		r.buckets[a] = b
	}
	b.tokens = min(float64(2*perSec), b.tokens+now.Sub(b.at).Seconds()*float64(perSec))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (f *Forwarder) init() {
	f.once.Do(func() {
		if f.Timeout <= 0 {
			f.Timeout = 2 * time.Second
		}
		if f.Attempts <= 0 {
			f.Attempts = 2
		}
		if f.MaxInFlight <= 0 {
			f.MaxInFlight = 256
		}
		if f.PerClient <= 0 {
			f.PerClient = 50
		}
		if f.MaxConns <= 0 {
			f.MaxConns = 64
		}
		if f.Log == nil {
			f.Log = slog.New(slog.DiscardHandler)
		}
		f.inFlight = make(chan struct{}, f.MaxInFlight)
		f.conns = make(chan struct{}, f.MaxConns)
	})
}

// errNotQuery is a datagram that is no DNS query.
var errNotQuery = errors.New("not a DNS query")

// checkQuery accepts a message that parses as a query with one question.
func checkQuery(q []byte) (dnsmessage.Header, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return h, errNotQuery
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return h, errNotQuery
	}
	return h, nil
}

// servfail answers q with SERVFAIL (the upstreams did not answer).
func servfail(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qs, _ := p.AllQuestions()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: dnsmessage.RCodeServerFailure})
	b.StartQuestions()
	for _, q := range qs {
		b.Question(q)
	}
	out, _ := b.Finish()
	return out
}

// Exchange asks the upstreams q (over TCP when tcp, else UDP), trying each
// in turn for Attempts rounds, and returns the first answer. A UDP answer
// is returned as it came, truncated or not.
func (f *Forwarder) Exchange(ctx context.Context, q []byte, tcp bool) ([]byte, error) {
	f.init()
	if len(f.Upstreams) == 0 {
		return nil, errors.New("no DNS server in the tunnel's configuration")
	}
	var lastErr error
	for round := 0; round < f.Attempts; round++ {
		for _, up := range f.Upstreams {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			actx, cancel := context.WithTimeout(ctx, f.Timeout)
			a, err := f.ask(actx, up, q, tcp)
			cancel()
			if err == nil {
				return a, nil
			}
			lastErr = err
		}
	}
	return nil, fmt.Errorf("no DNS server answered through the tunnel: %w", lastErr)
}

// ask sends q to one upstream and waits for the answer with its ID.
func (f *Forwarder) ask(ctx context.Context, up netip.Addr, q []byte, tcp bool) ([]byte, error) {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	c, err := f.Dialer.DialContext(ctx, network, netip.AddrPortFrom(up, 53).String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	id := binary.BigEndian.Uint16(q)
	if tcp {
		if err := writeTCP(c, q); err != nil {
			return nil, err
		}
		for {
			a, err := readTCP(c)
			if err != nil {
				return nil, err
			}
			if len(a) >= 12 && binary.BigEndian.Uint16(a) == id {
				return a, nil
			}
		}
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// Only an answer to this query counts; anything else (a late
		// answer to an earlier try) is skipped.
		if n >= 12 && binary.BigEndian.Uint16(buf) == id && buf[2]&0x80 != 0 {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func writeTCP(w io.Writer, m []byte) error {
	b := make([]byte, 2+len(m))
	binary.BigEndian.PutUint16(b, uint16(len(m)))
	copy(b[2:], m)
	_, err := w.Write(b)
	return err
}

func readTCP(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	m := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(r, m)
	return m, err
}

// answer relays one query and always has a reply for a real query:
// SERVFAIL when the upstreams fail.
func (f *Forwarder) answer(ctx context.Context, q []byte, tcp bool) []byte {
	if _, err := checkQuery(q); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(f.Attempts*max(len(f.Upstreams), 1))*f.Timeout)
	defer cancel()
	a, err := f.Exchange(ctx, q, tcp)
	if err != nil {
		f.Log.Debug("DNS query not answered", "err", err)
		return servfail(q)
	}
	return a
}

// ServeUDP answers queries on pc until ctx ends (it then closes pc and
// abandons the queries under way) or pc is closed.
func (f *Forwarder) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	f.init()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if !f.admit(from) {
			continue // not allowed, or over its rate: no answer to amplify
		}
		select {
		case f.inFlight <- struct{}{}:
		default:
			continue // too many at once: dropped, as UDP may be; the client retries
		}
		q := append([]byte(nil), buf[:n]...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-f.inFlight }()
			if a := f.answer(ctx, q, false); a != nil {
				pc.WriteTo(a, from)
			}
		}()
	}
}

// ServeTCP answers queries on l until ctx ends (it then closes l and the
// clients' connections) or l is closed; each connection may carry several
// queries, one after another, and closes after 10 s idle.
func (f *Forwarder) ServeTCP(ctx context.Context, l net.Listener) error {
	f.init()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if !f.admit(c.RemoteAddr()) {
			c.Close()
			continue
		}
		select {
		case f.conns <- struct{}{}:
		default:
			c.Close()
			continue
		}
		mu.Lock()
		open[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-f.conns }()
			defer func() { mu.Lock(); delete(open, c); mu.Unlock(); c.Close() }()
			for {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				q, err := readTCP(c)
				if err != nil {
					return
				}
				a := f.answer(ctx, q, true)
				if a == nil {
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if writeTCP(c, a) != nil {
					return
				}
			}
		}()
	}
}
