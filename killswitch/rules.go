package killswitch

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
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
			out = append(out, rule{exprs: nft.Cat(nft.Addr(netip.MustParsePrefix(scope), src), nft.L4(unix.IPPROTO_ICMPV6),
				[]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}, nft.Eq([]byte{t}), nft.Accept}),
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

// endpointRule lets vpnfwd's own marked WireGuard socket reach the
// endpoint, and nothing else.
func endpointRule(mark uint32, ep netip.AddrPort) rule {
	return rule{
		exprs: nft.Cat([]expr.Any{nft.Meta(expr.MetaKeyMARK), nft.Eq(nft.U32(mark))},
			nft.Addr(netip.PrefixFrom(ep.Addr(), ep.Addr().BitLen()), false),
			nft.L4(unix.IPPROTO_UDP), nft.Ports(0, ep.Port()), []expr.Any{nft.Count, nft.Accept}),
		comment: "vpnfwd wireguard endpoint " + ep.String(),
	}
}

// ssdpPort is SSDP's (upnp.SSDPPort; not imported, to keep the kill
// switch free of the IGD's HTTP server).
const ssdpPort = 1900

// scoped reports whether only a user or a cgroup is confined.
func (c Config) scoped() bool { return c.OnlyUID != nil || c.cgroupID != 0 }

// scopeRules is the output chain in scoped mode: loopback, then the
// confined user's or cgroup's traffic goes through the confined chain
// (which ends in drop), and everything else is accepted. A positive match
// is used because a socket-less packet, or a socket in a shallower cgroup,
// makes the match fail rather than differ.
func scopeRules(c Config) []rule {
	rs := []rule{{exprs: []expr.Any{nft.Meta(expr.MetaKeyOIFNAME), nft.Eq(nft.IfName("lo")), nft.Accept}, comment: "loopback"}}
	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: chainConfined}
	if c.OnlyUID != nil {
		rs = append(rs, rule{exprs: []expr.Any{nft.Meta(expr.MetaKeySKUID), nft.Eq(nft.U32(*c.OnlyUID)), jump}, comment: "only_uid: this user is confined"})
	}
	if c.cgroupID != 0 {
		b := make([]byte, 8)
		binary.NativeEndian.PutUint64(b, c.cgroupID)
		rs = append(rs, rule{exprs: []expr.Any{&expr.Socket{Key: expr.SocketKeyCgroupv2, Level: c.cgroupLevel, Register: 1}, nft.Eq(b), jump},
			comment: "only_cgroup: this cgroup is confined"})
	}
	// vpnfwd's own WireGuard socket, whoever runs it.
	rs = append(rs, rule{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chainEndpoint}}, comment: "the WireGuard endpoint"})
	return append(rs, rule{exprs: []expr.Any{nft.Accept}, comment: "others are not confined"})
}

// outputRules are the confining rules: loopback, the endpoint chain,
// vpnfwd's own DNS lookups and login, the LAN, DHCP and NDP; the rest is
// dropped (by the chain's policy, or by the final drop in scoped mode).
func outputRules(c Config) []rule {
	var rs []rule
	marked := []expr.Any{nft.Meta(expr.MetaKeyMARK), nft.Eq(nft.U32(c.Mark))}
	drop := []expr.Any{nft.Count, &expr.Verdict{Kind: expr.VerdictDrop}}
	// Docker's embedded resolver sits on loopback but answers from the
	// host's namespace, outside the tunnel. Docker DNATs 127.0.0.11:53 to
	// a random port first (nat, priority -100), so every port of it is
	// dropped, after vpnfwd's own (marked) lookups of the endpoint name.
	docker := nft.Addr(netip.MustParsePrefix(dockerDNS+"/32"), false)
	rs = append(rs,
		rule{exprs: nft.Cat(marked, docker, []expr.Any{nft.Count, nft.Accept}), comment: "vpnfwd's own lookups through Docker's DNS (marked sockets only)"},
		rule{exprs: nft.Cat(docker, drop), comment: "Docker's embedded DNS resolves outside the tunnel (any port: Docker rewrites 53)"})
	rs = append(rs, rule{exprs: []expr.Any{nft.Meta(expr.MetaKeyOIFNAME), nft.Eq(nft.IfName("lo")), nft.Accept}, comment: "loopback"})
	// A program's NAT-PMP/PCP request to its gateway, taken to vpnfwd's
	// responder on 127.0.0.1 (nft.AnswerLocally): the output hook still
	// names the interface it was routed to first, so "loopback" above
	// does not see it.
	rs = append(rs, rule{exprs: nft.Cat(nft.Addr(netip.MustParsePrefix("127.0.0.1/32"), false), nft.L4(unix.IPPROTO_UDP), nft.Ports(0, portmap.Port), []expr.Any{nft.Accept}),
		comment: "NAT-PMP/PCP requests answered by vpnfwd on loopback"})
	// Likewise SSDP (UPnP discovery) taken to vpnfwd's IGD.
	rs = append(rs, rule{exprs: nft.Cat(nft.Addr(netip.MustParsePrefix("127.0.0.1/32"), false), nft.L4(unix.IPPROTO_UDP), nft.Ports(0, ssdpPort), []expr.Any{nft.Accept}),
		comment: "SSDP answered by vpnfwd's UPnP IGD on loopback"})
	if c.Tunnel != "" {
		// Before the DNS drops: the tunnel's DNS server is reached
		// through it.
		rs = append(rs, rule{exprs: []expr.Any{nft.Meta(expr.MetaKeyOIFNAME), nft.Eq(nft.IfName(c.Tunnel)), nft.Accept}, comment: "tunnel interface " + c.Tunnel})
	}
	rs = append(rs, rule{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chainEndpoint}}, comment: "the WireGuard endpoint"})
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		rs = append(rs, rule{exprs: nft.Cat(marked, nft.L4(proto), nft.Ports(0, 53), []expr.Any{nft.Count, nft.Accept}),
			comment: "vpnfwd's own lookups of the endpoint name (marked sockets only)"})
	}
	// Anyone else's DNS goes nowhere, the LAN's resolver included (a
	// resolv.conf pointing at the home router would send every lookup
	// to the ISP).
	for _, d := range dnsPorts {
		rs = append(rs, rule{exprs: nft.Cat(nft.L4(d.proto), nft.Ports(0, d.port), drop), comment: fmt.Sprintf("DNS outside the tunnel (port %d), before the LAN", d.port)})
	}
	// An app asking the LAN's router for a port (NAT-PMP/PCP) would open
	// one on the real address: with allow_lan that request would get
	// out before vpnfwd's responder takes it (tun mode, exec) or where
	// nothing does (netstack).
	rs = append(rs, rule{exprs: nft.Cat(nft.L4(unix.IPPROTO_UDP), nft.Ports(0, portmap.Port), drop), comment: "NAT-PMP/PCP to a router outside the tunnel (a port on the real address), before the LAN"})
	// The same for UPnP: an app that finds the LAN's IGD by SSDP (to
	// 239.255.255.250 or a router's 1900) would map a port on the real
	// address; with discovery dropped it finds none.
	rs = append(rs, rule{exprs: nft.Cat(nft.L4(unix.IPPROTO_UDP), nft.Ports(0, ssdpPort), drop), comment: "SSDP (UPnP discovery) outside the tunnel (a port on the real address), before the LAN"})
	for _, p := range c.AllowMarkedTCP {
		rs = append(rs, rule{exprs: nft.Cat([]expr.Any{nft.Meta(expr.MetaKeyMARK), nft.Eq(nft.U32(c.Mark))}, nft.L4(unix.IPPROTO_TCP), nft.Ports(0, p), []expr.Any{nft.Count, nft.Accept}),
			comment: "vpnfwd's own provider login before the tunnel (marked sockets only)"})
	}
	for _, lan := range c.AllowLAN {
		rs = append(rs, rule{exprs: append(nft.Addr(lan, false), nft.Accept), comment: "allow_lan " + lan.String()})
	}
	rs = append(rs, rule{exprs: nft.Cat(nft.Addr(netip.MustParsePrefix("255.255.255.255/32"), false), nft.L4(unix.IPPROTO_UDP), nft.Ports(68, 67), []expr.Any{nft.Accept}),
		comment: "DHCP, broadcast only (keeps the link; unicast renewals need allow_lan)"})
	rs = append(rs, icmp6Types(false, 133, 135, 136)...)
	return append(rs, rule{exprs: []expr.Any{nft.Count, &expr.Verdict{Kind: expr.VerdictDrop}}, comment: "dropped by the kill switch"})
}

func inputRules(c Config) []rule {
	rs := []rule{
		{exprs: []expr.Any{nft.Meta(expr.MetaKeyIIFNAME), nft.Eq(nft.IfName("lo")), nft.Accept}, comment: "loopback"},
		{exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: nft.U32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: nft.U32(0)},
			nft.Neq(nft.U32(0)), nft.Accept}, comment: "replies"},
	}
	if c.Tunnel != "" {
		// Peers coming in through the forwarded port.
		rs = append(rs, rule{exprs: []expr.Any{nft.Meta(expr.MetaKeyIIFNAME), nft.Eq(nft.IfName(c.Tunnel)), nft.Accept}, comment: "tunnel interface " + c.Tunnel})
	}
	for _, lan := range c.AllowLAN {
		rs = append(rs, rule{exprs: append(nft.Addr(lan, true), nft.Accept), comment: "allow_lan " + lan.String()})
	}
	rs = append(rs, rule{exprs: nft.Cat(nft.NFProto(netip.IPv4Unspecified()), nft.L4(unix.IPPROTO_UDP), nft.Ports(67, 68), []expr.Any{nft.Accept}), comment: "DHCP (keeps the link)"})
	return append(rs, icmp6Types(true, 134, 135, 136)...)
}

func forwardRules(c Config) []rule {
	var rs []rule
	for _, lan := range c.AllowLAN {
		rs = append(rs, rule{exprs: append(nft.Addr(lan, false), nft.Accept), comment: "allow_lan " + lan.String()})
		rs = append(rs, rule{exprs: append(nft.Addr(lan, true), nft.Accept), comment: "allow_lan " + lan.String()})
	}
	return rs
}

func baseChain(t *nftables.Table, name string, hook *nftables.ChainHook) *nftables.Chain {
	drop := nftables.ChainPolicyDrop
	return &nftables.Chain{Name: name, Table: t, Hooknum: hook, Priority: nftables.ChainPriorityFilter, Type: nftables.ChainTypeFilter, Policy: &drop}
}
