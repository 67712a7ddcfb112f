package killswitch

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Chain names inside the table.
const (
	chainOutput   = "output"
	chainInput    = "input"
	chainForward  = "forward"
	chainEndpoint = "endpoint" // swapped atomically when the endpoint moves
	chainConfined = "confined" // scoped mode: the rules for the confined user or cgroup
	chainOwner    = "owner"    // one rule whose comment is the owning process ("pid N")

	dockerDNS = "127.0.0.11"
)

// rule is one rule before it is bound to a table and chain.
type rule struct {
	exprs   []expr.Any
	comment string
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

// Expression helpers. Register 1 holds what is loaded, then compared.

func meta(k expr.MetaKey) expr.Any { return &expr.Meta{Key: k, Register: 1} }

func eq(b []byte) expr.Any  { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b} }
func neq(b []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: b} }

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

func u32(v uint32) []byte  { b := make([]byte, 4); binary.NativeEndian.PutUint32(b, v); return b }
func be16(v uint16) []byte { b := make([]byte, 2); binary.BigEndian.PutUint16(b, v); return b }

var (
	accept = &expr.Verdict{Kind: expr.VerdictAccept}
	count  = &expr.Counter{}
)

func nfproto(a netip.Addr) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if a.Is6() {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{meta(expr.MetaKeyNFPROTO), eq([]byte{p})}
}

// addr matches the source (src true) or destination against a prefix.
func addr(p netip.Prefix, src bool) []expr.Any {
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
	out := append(nfproto(a), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
	if p.Bits() < a.BitLen() {
		mask := netip.PrefixFrom(a, p.Bits()).Masked()
		m := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			m[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: m, Xor: make([]byte, n)})
		return append(out, eq(mask.Addr().AsSlice()))
	}
	return append(out, eq(a.AsSlice()))
}

func l4(proto byte) []expr.Any { return []expr.Any{meta(expr.MetaKeyL4PROTO), eq([]byte{proto})} }

// port loads the source or destination port.
func port(dst bool) expr.Any {
	off := uint32(0)
	if dst {
		off = 2
	}
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
}

func ports(sport, dport uint16) []expr.Any {
	var out []expr.Any
	if sport != 0 {
		out = append(out, port(false), eq(be16(sport)))
	}
	if dport != 0 {
		out = append(out, port(true), eq(be16(dport)))
	}
	return out
}

// icmp6Types accepts neighbour discovery (the given ICMPv6 types) only to
// or from (src) link-local and multicast addresses, as Mullvad's rules do:
// it keeps the link without opening a path to a routed address.
func icmp6Types(src bool, types ...byte) []rule {
	var out []rule
	scopes := []string{"fe80::/10", "ff02::/16"}
	if src {
		scopes = []string{"fe80::/10", "::/128"} // the unspecified source of duplicate address detection
	}
	for _, t := range types {
		for _, scope := range scopes {
			out = append(out, rule{exprs: cat(addr(netip.MustParsePrefix(scope), src), l4(unix.IPPROTO_ICMPV6),
				[]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}, eq([]byte{t}), accept}),
				comment: "IPv6 neighbour discovery, link-local and multicast only (keeps the link)"})
		}
	}
	return out
}

// dnsPorts are DNS (53, UDP and TCP) and DNS over TLS/QUIC (853).
var dnsPorts = []struct {
	proto byte
	port  uint16
}{{unix.IPPROTO_UDP, 53}, {unix.IPPROTO_TCP, 53}, {unix.IPPROTO_TCP, 853}, {unix.IPPROTO_UDP, 853}}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// endpointRule lets vpnfwd's own marked WireGuard socket reach the
// endpoint, and nothing else.
func endpointRule(mark uint32, ep netip.AddrPort) rule {
	return rule{
		exprs: cat([]expr.Any{meta(expr.MetaKeyMARK), eq(u32(mark))},
			addr(netip.PrefixFrom(ep.Addr(), ep.Addr().BitLen()), false),
			l4(unix.IPPROTO_UDP), ports(0, ep.Port()), []expr.Any{count, accept}),
		comment: "vpnfwd wireguard endpoint " + ep.String(),
	}
}

// scoped reports whether only a user or a cgroup is confined.
func (c Config) scoped() bool { return c.OnlyUID != nil || c.cgroupID != 0 }

// scopeRules is the output chain in scoped mode: loopback, then the
// confined user's or cgroup's traffic goes through the confined chain
// (which ends in drop), and everything else is accepted. A positive match
// is used because a socket-less packet, or a socket in a shallower cgroup,
// makes the match fail rather than differ.
func scopeRules(c Config) []rule {
	rs := []rule{{exprs: []expr.Any{meta(expr.MetaKeyOIFNAME), eq(ifname("lo")), accept}, comment: "loopback"}}
	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: chainConfined}
	if c.OnlyUID != nil {
		rs = append(rs, rule{exprs: []expr.Any{meta(expr.MetaKeySKUID), eq(u32(*c.OnlyUID)), jump}, comment: "only_uid: this user is confined"})
	}
	if c.cgroupID != 0 {
		b := make([]byte, 8)
		binary.NativeEndian.PutUint64(b, c.cgroupID)
		rs = append(rs, rule{exprs: []expr.Any{&expr.Socket{Key: expr.SocketKeyCgroupv2, Level: c.cgroupLevel, Register: 1}, eq(b), jump},
			comment: "only_cgroup: this cgroup is confined"})
	}
	// vpnfwd's own WireGuard socket, whoever runs it.
	rs = append(rs, rule{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chainEndpoint}}, comment: "the WireGuard endpoint"})
	return append(rs, rule{exprs: []expr.Any{accept}, comment: "others are not confined"})
}

// outputRules are the confining rules: loopback, the endpoint chain,
// vpnfwd's own DNS lookups and login, the LAN, DHCP and NDP; the rest is
// dropped (by the chain's policy, or by the final drop in scoped mode).
func outputRules(c Config) []rule {
	var rs []rule
	marked := []expr.Any{meta(expr.MetaKeyMARK), eq(u32(c.Mark))}
	drop := []expr.Any{count, &expr.Verdict{Kind: expr.VerdictDrop}}
	// Docker's embedded resolver sits on loopback but answers from the
	// host's namespace, outside the tunnel. Docker DNATs 127.0.0.11:53 to
	// a random port first (nat, priority -100), so every port of it is
	// dropped, after vpnfwd's own (marked) lookups of the endpoint name.
	docker := addr(netip.MustParsePrefix(dockerDNS+"/32"), false)
	rs = append(rs,
		rule{exprs: cat(marked, docker, []expr.Any{count, accept}), comment: "vpnfwd's own lookups through Docker's DNS (marked sockets only)"},
		rule{exprs: cat(docker, drop), comment: "Docker's embedded DNS resolves outside the tunnel (any port: Docker rewrites 53)"})
	rs = append(rs, rule{exprs: []expr.Any{meta(expr.MetaKeyOIFNAME), eq(ifname("lo")), accept}, comment: "loopback"})
	if c.Tunnel != "" {
		// Before the DNS drops: the tunnel's DNS server is reached
		// through it.
		rs = append(rs, rule{exprs: []expr.Any{meta(expr.MetaKeyOIFNAME), eq(ifname(c.Tunnel)), accept}, comment: "tunnel interface " + c.Tunnel})
	}
	rs = append(rs, rule{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chainEndpoint}}, comment: "the WireGuard endpoint"})
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		rs = append(rs, rule{exprs: cat(marked, l4(proto), ports(0, 53), []expr.Any{count, accept}),
			comment: "vpnfwd's own lookups of the endpoint name (marked sockets only)"})
	}
	// Anyone else's DNS goes nowhere, the LAN's resolver included (a
	// resolv.conf pointing at the home router would send every lookup
	// to the ISP).
	for _, d := range dnsPorts {
		rs = append(rs, rule{exprs: cat(l4(d.proto), ports(0, d.port), drop), comment: fmt.Sprintf("DNS outside the tunnel (port %d), before the LAN", d.port)})
	}
	for _, p := range c.AllowMarkedTCP {
		rs = append(rs, rule{exprs: cat([]expr.Any{meta(expr.MetaKeyMARK), eq(u32(c.Mark))}, l4(unix.IPPROTO_TCP), ports(0, p), []expr.Any{count, accept}),
			comment: "vpnfwd's own provider login before the tunnel (marked sockets only)"})
	}
	for _, lan := range c.AllowLAN {
		rs = append(rs, rule{exprs: append(addr(lan, false), accept), comment: "allow_lan " + lan.String()})
	}
	rs = append(rs, rule{exprs: cat(addr(netip.MustParsePrefix("255.255.255.255/32"), false), l4(unix.IPPROTO_UDP), ports(68, 67), []expr.Any{accept}),
		comment: "DHCP, broadcast only (keeps the link; unicast renewals need allow_lan)"})
	rs = append(rs, icmp6Types(false, 133, 135, 136)...)
	return append(rs, rule{exprs: []expr.Any{count, &expr.Verdict{Kind: expr.VerdictDrop}}, comment: "dropped by the kill switch"})
}

func inputRules(c Config) []rule {
	rs := []rule{
		{exprs: []expr.Any{meta(expr.MetaKeyIIFNAME), eq(ifname("lo")), accept}, comment: "loopback"},
		{exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: u32(0)},
			neq(u32(0)), accept}, comment: "replies"},
	}
	if c.Tunnel != "" {
		// Peers coming in through the forwarded port.
		rs = append(rs, rule{exprs: []expr.Any{meta(expr.MetaKeyIIFNAME), eq(ifname(c.Tunnel)), accept}, comment: "tunnel interface " + c.Tunnel})
	}
	for _, lan := range c.AllowLAN {
		rs = append(rs, rule{exprs: append(addr(lan, true), accept), comment: "allow_lan " + lan.String()})
	}
	rs = append(rs, rule{exprs: cat(nfproto(netip.IPv4Unspecified()), l4(unix.IPPROTO_UDP), ports(67, 68), []expr.Any{accept}), comment: "DHCP (keeps the link)"})
	return append(rs, icmp6Types(true, 134, 135, 136)...)
}

func forwardRules(c Config) []rule {
	var rs []rule
	for _, lan := range c.AllowLAN {
		rs = append(rs, rule{exprs: append(addr(lan, false), accept), comment: "allow_lan " + lan.String()})
		rs = append(rs, rule{exprs: append(addr(lan, true), accept), comment: "allow_lan " + lan.String()})
	}
	return rs
}

func baseChain(t *nftables.Table, name string, hook *nftables.ChainHook) *nftables.Chain {
	drop := nftables.ChainPolicyDrop
	return &nftables.Chain{Name: name, Table: t, Hooknum: hook, Priority: nftables.ChainPriorityFilter, Type: nftables.ChainTypeFilter, Policy: &drop}
}
