package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PortRedirect is one forwarded port taken to another local port.
type PortRedirect struct {
	Proto string // "tcp" or "udp"
	From  uint16 // the port connections arrive on through the tunnel
	To    uint16 // the local service's port
}

// Redirect, in the kernel data plane, sends what arrives through the TUN
// on each From port to the To port on the same host (nftables "redirect"
// in a nat table of its own, named table). Each call replaces the rules
// atomically; none removes the table. The service must listen on the
// TUN's address or on all addresses (0.0.0.0 / ::), not on loopback only.
func Redirect(table, tun string, rs []PortRedirect) error {
	return ReplaceTable(table, len(rs) == 0, func(c *nftables.Conn, t *nftables.Table) error {
		return redirectRules(c, t, tun, rs)
	})
}

func redirectRules(c *nftables.Conn, t *nftables.Table, tun string, rs []PortRedirect) error {
	pol := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &pol})
	for _, r := range rs {
		proto, err := IPProto(r.Proto)
		if err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: Comment(fmt.Sprintf("forwarded %s port %d to %d", r.Proto, r.From, r.To)), Exprs: []expr.Any{
			Meta(expr.MetaKeyIIFNAME), Eq(IfName(tun)),
			Meta(expr.MetaKeyL4PROTO), Eq([]byte{proto}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, Eq(BE16(r.From)),
			&expr.Immediate{Register: 1, Data: BE16(r.To)},
			&expr.Redir{RegisterProtoMin: 1},
		}})
	}
	return nil
}

// AnswerLocally takes the UDP datagrams that programs in this namespace
// send to port on any IPv4 address off loopback (the gateway they found
// in their routes) to the same port on 127.0.0.1, where vpnfwd answers:
// NAT-PMP and PCP requests never leave, so the apps get vpnfwd's answer
// and the provider's gateway hears vpnfwd alone. Datagrams carrying one
// of marks (vpnfwd's own sockets) are left alone. A nat table of its
// own, named table; an empty port removes it.
func AnswerLocally(table string, port uint16, marks ...uint32) error {
	return ReplaceTable(table, port == 0, func(c *nftables.Conn, t *nftables.Table) error {
		pol := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &pol})
		ex := Cat(NFProto(netip.IPv4Unspecified()), L4(unix.IPPROTO_UDP), Ports(0, port), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1}, Neq([]byte{127}),
		})
		for _, m := range marks {
			ex = append(ex, Meta(expr.MetaKeyMARK), Neq(U32(m)))
		}
		ex = append(ex, Count, &expr.Redir{})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: Comment(fmt.Sprintf("udp %d to any address is answered here by vpnfwd", port)), Exprs: ex})
		return nil
	})
}
