package session

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Dialer connects through the tunnel (netstack.Stack).
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// DNSProbe is the liveness check for providers without one of their own:
// a 17-byte DNS query (the root's NS records) to the tunnel's DNS server.
// Any answer proves the tunnel carries traffic both ways, whatever its
// code, and so does an ICMP refusal (no DNS server there, but the
// gateway answered).
func DNSProbe(d Dialer, server netip.Addr) func(ctx context.Context) error {
	addr := netip.AddrPortFrom(server, 53).String()
	return func(ctx context.Context) error {
		c, err := d.DialContext(ctx, "udp", addr)
		if err != nil {
			return fmt.Errorf("DNS check: %w", err)
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		} else {
			c.SetDeadline(time.Now().Add(time.Second))
		}
		var id [2]byte
		rand.Read(id[:])
		q := append(id[:], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x00, 0, 2, 0, 1)
		if _, err := c.Write(q); err != nil {
			return dnsErr(server, err)
		}
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return dnsErr(server, err)
			}
			// A reply (QR set) to our query; anything else is ignored.
			if n >= 12 && binary.BigEndian.Uint16(buf) == binary.BigEndian.Uint16(id[:]) && buf[2]&0x80 != 0 {
				return nil
			}
		}
	}
}

// dnsErr is nil for a refusal (the tunnel carried the gateway's ICMP
// answer), the error otherwise.
func dnsErr(server netip.Addr, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "refused") {
		return nil
	}
	return fmt.Errorf("DNS check of %s: %w", server, err)
}
