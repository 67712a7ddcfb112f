package natpmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrRefused means the gateway answered with ICMP port unreachable: there
// is no NAT-PMP service there.
var ErrRefused = errors.New("NAT-PMP refused (ICMP port unreachable)")

// ErrNoAnswer means every retry timed out.
var ErrNoAnswer = errors.New("no NAT-PMP answer")

// Dialer makes the UDP socket to the gateway (through the tunnel).
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Client talks NAT-PMP to one gateway, one request at a time (RFC 6886
// 3.1). Replies come over a connected socket, so only the gateway's are
// read. It tracks the gateway's epoch to notice restarts.
type Client struct {
	Gateway netip.Addr
	// FirstTimeout and Attempts set the retry schedule: the timeout doubles
	// after each attempt (RFC: 250 ms, 9 attempts).
	FirstTimeout time.Duration
	Attempts     int
	// MaxTimeout caps the doubling (zero: no cap).
	MaxTimeout time.Duration
	Log        *slog.Logger

	dialer Dialer
	mu     sync.Mutex
	conn   net.Conn

	epochMu   sync.Mutex
	epoch     uint32
	epochAt   time.Time
	restarted bool
}

// NewClient makes a client for gateway, dialling through d.
func NewClient(d Dialer, gateway netip.Addr, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{Gateway: gateway, FirstTimeout: 250 * time.Millisecond, Attempts: 9, Log: log, dialer: d}
}

// Close closes the socket.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	return nil
}

// External asks for the gateway's public address.
func (c *Client) External(ctx context.Context) (ExternalReply, error) {
	b, err := c.roundTrip(ctx, []byte{0, OpExternal}, OpExternal)
	if err != nil {
		return ExternalReply{}, err
	}
	r, err := ParseExternalReply(b)
	if err == nil {
		c.seeEpoch(r.Epoch)
	}
	return r, err
}

// Map creates, renews (same request again) or deletes (Lifetime 0) a
// mapping.
func (c *Client) Map(ctx context.Context, req MapRequest) (MapReply, error) {
	b, err := c.roundTrip(ctx, req.Marshal(), req.Op)
	if err != nil {
		return MapReply{}, err
	}
	r, err := ParseMapReply(b, req.Op)
	if err == nil {
		c.seeEpoch(r.Epoch)
	}
	return r, err
}

// Restarted reports (once) whether a reply's epoch showed that the gateway
// restarted and lost its mappings since the previous reply.
func (c *Client) Restarted() bool {
	c.epochMu.Lock()
	defer c.epochMu.Unlock()
	r := c.restarted
	c.restarted = false
	return r
}

// seeEpoch applies RFC 6886 3.6: the epoch should advance at least 7/8 as
// fast as our clock; if it is more than 2 s behind that, the gateway lost
// its state.
func (c *Client) seeEpoch(epoch uint32) {
	c.epochMu.Lock()
	defer c.epochMu.Unlock()
	now := time.Now()
	if !c.epochAt.IsZero() {
		elapsed := now.Sub(c.epochAt).Seconds()
		expected := float64(c.epoch) + elapsed*7/8
		if float64(epoch)+2 < expected {
			c.restarted = true
		}
	}
	c.epoch, c.epochAt = epoch, now
}

func (c *Client) socket(ctx context.Context) (net.Conn, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	conn, err := c.dialer.DialContext(ctx, "udp", netip.AddrPortFrom(c.Gateway, Port).String())
	if err != nil {
		return nil, fmt.Errorf("opening NAT-PMP socket to %s: %w", c.Gateway, err)
	}
	c.conn = conn
	return conn, nil
}

func isRefused(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "connection was refused"))
}

// roundTrip sends req and waits for a reply to op, retrying on timeout.
func (c *Client) roundTrip(ctx context.Context, req []byte, op uint8) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, err := c.socket(ctx)
	if err != nil {
		return nil, err
	}
	// A cancelled ctx ends a read at once, not at its timeout.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	timeout := c.FirstTimeout
	buf := make([]byte, 64)
	gw := netip.AddrPortFrom(c.Gateway, Port)
	for attempt := 1; attempt <= c.Attempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := conn.Write(req); err != nil {
			if isRefused(err) {
				return nil, fmt.Errorf("%s: %w", gw, ErrRefused)
			}
			return nil, fmt.Errorf("sending NAT-PMP request to %s: %w", gw, err)
		}
		deadline := time.Now().Add(timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		conn.SetReadDeadline(deadline)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if isRefused(err) {
					return nil, fmt.Errorf("%s: %w", gw, ErrRefused)
				}
				if errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) {
					break
				}
				return nil, fmt.Errorf("reading NAT-PMP reply from %s: %w", gw, err)
			}
			if n >= 2 && buf[1] == 128+op {
				return append([]byte(nil), buf[:n]...), nil
			}
			// A stray or late reply to another request: keep waiting.
		}
		if attempt == 4 {
			c.Log.Warn("no NAT-PMP answer yet, still trying", "gateway", gw.String(), "attempts", attempt)
		}
		timeout *= 2
		if c.MaxTimeout > 0 && timeout > c.MaxTimeout {
			timeout = c.MaxTimeout
		}
	}
	return nil, fmt.Errorf("%s after %d attempts: %w", gw, c.Attempts, ErrNoAnswer)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
