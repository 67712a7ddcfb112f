package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
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
