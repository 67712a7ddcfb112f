// Package nft is vpnfwd's nftables plumbing over netlink (no nft binary):
// the marks on vpnfwd's own sockets, tables replaced in one transaction,
// the expression helpers rules are built from, and two small tables that
// are not policy: Redirect (a forwarded port to the local service's port,
// tun mode) and Guard (the provider's control endpoints kept to vpnfwd's
// marked sockets). What may leave the host — the policy — is killswitch's.
// Everything here needs CAP_NET_ADMIN.
package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// WireGuardMark is the SO_MARK of vpnfwd's WireGuard socket: the routing
// rules keep marked packets out of the tunnel, and the kill switch lets
// exactly them reach the endpoint (and vpnfwd's lookups before the tunnel
// exists).
const WireGuardMark = 0x7670 // "vp"

// OwnMark is the SO_MARK of vpnfwd's own sockets through the kernel TUN
// (tun and exec mode: the provider's requests, the liveness checks). It
// differs from WireGuardMark: these must go into the tunnel.
const OwnMark = 0x7671

// Conn opens a netlink connection to nftables.
func Conn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: netlink: %w", err)
	}
	return c, nil
}

// Explain turns a refused netlink call into an error that says what is
// missing.
func Explain(err error) error {
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("nftables needs CAP_NET_ADMIN (run as root, or give the container/binary NET_ADMIN): %w", err)
	}
	return fmt.Errorf("nftables: %w", err)
}

// ReplaceTable replaces the inet table named table in one transaction:
// the old one (if any) goes, and unless empty, build fills a new one.
func ReplaceTable(table string, empty bool, build func(*nftables.Conn, *nftables.Table) error) error {
	c, err := Conn()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	if old, err := c.ListTableOfFamily(table, nftables.TableFamilyINet); err == nil && old != nil {
		c.DelTable(t)
	}
	if empty {
		if err := c.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
			return Explain(err)
		}
		return nil
	}
	c.AddTable(t)
	if err := build(c, t); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return Explain(err)
	}
	return nil
}

// IPProto is the IP protocol number of "tcp" or "udp".
func IPProto(name string) (byte, error) {
	switch name {
	case "tcp":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	}
	return 0, fmt.Errorf("protocol %q (want tcp or udp)", name)
}

// Comment is a rule's comment, as nft shows it.
func Comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

// Expression helpers. Register 1 holds what is loaded, then compared.

// Meta loads a meta key.
func Meta(k expr.MetaKey) expr.Any { return &expr.Meta{Key: k, Register: 1} }

// Eq and Neq compare what was loaded.
func Eq(b []byte) expr.Any  { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b} }
func Neq(b []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: b} }

// IfName is an interface name as the kernel compares it.
func IfName(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// U32 is a mark or other meta value (host order); BE16 a port.
func U32(v uint32) []byte  { b := make([]byte, 4); binary.NativeEndian.PutUint32(b, v); return b }
func BE16(v uint16) []byte { b := make([]byte, 2); binary.BigEndian.PutUint16(b, v); return b }

// Verdicts and a counter, shared by rules.
var (
	Accept = &expr.Verdict{Kind: expr.VerdictAccept}
	Count  = &expr.Counter{}
)

// NFProto matches the address's family.
func NFProto(a netip.Addr) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if a.Is6() {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{Meta(expr.MetaKeyNFPROTO), Eq([]byte{p})}
}

// Addr matches the source (src true) or destination against a prefix.
func Addr(p netip.Prefix, src bool) []expr.Any {
	a := p.Addr()
	off, n := uint32(16), uint32(4) // IPv4 daddr
	if src {
		off = 12
	}
	if a.Is6() {
		off, n = 24, 16
		if src {
			off = 8
		}
	}
	out := append(NFProto(a), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
	if p.Bits() < a.BitLen() {
		mask := netip.PrefixFrom(a, p.Bits()).Masked()
		m := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			m[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: m, Xor: make([]byte, n)})
		return append(out, Eq(mask.Addr().AsSlice()))
	}
	return append(out, Eq(a.AsSlice()))
}

// L4 matches the transport protocol.
func L4(proto byte) []expr.Any { return []expr.Any{Meta(expr.MetaKeyL4PROTO), Eq([]byte{proto})} }

// port loads the source or destination port.
func port(dst bool) expr.Any {
	off := uint32(0)
	if dst {
		off = 2
	}
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
}

// Ports matches the source and destination ports (0: any).
func Ports(sport, dport uint16) []expr.Any {
	var out []expr.Any
	if sport != 0 {
		out = append(out, port(false), Eq(BE16(sport)))
	}
	if dport != 0 {
		out = append(out, port(true), Eq(BE16(dport)))
	}
	return out
}

// Cat joins expression lists.
func Cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
