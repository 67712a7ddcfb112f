package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Reserved is one control endpoint that only vpnfwd's own sockets may
// reach: "tcp" or "udp", and the address.
type Reserved struct {
	Proto string
	Addr  netip.AddrPort
}

// Guard makes the provider's control endpoints (the NAT-PMP gateway's
// 5351, PIA's port API) vpnfwd's alone in this network namespace: an inet
// table of its own (named table) rejects every packet to them that does
// not carry mark, from local programs (output) and from hosts this
// namespace routes for (forward); the program gets an ICMP refusal at
// once. Each call replaces the table atomically; an empty list removes it.
func Guard(table string, mark uint32, rs []Reserved) error {
	return ReplaceTable(table, len(rs) == 0, func(c *nftables.Conn, t *nftables.Table) error {
		return guardRules(c, t, mark, rs)
	})
}

func guardRules(c *nftables.Conn, t *nftables.Table, mark uint32, rs []Reserved) error {
	pol := nftables.ChainPolicyAccept
	for _, hook := range []struct {
		name string
		num  *nftables.ChainHook
	}{{"output", nftables.ChainHookOutput}, {"forward", nftables.ChainHookForward}} {
		// Before the kill switch's chains (priority 0): a refusal here is
		// final whatever they would Accept.
		ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook.num, Priority: nftables.ChainPriorityRef(-10), Policy: &pol})
		for _, r := range rs {
			proto, err := IPProto(r.Proto)
			if err != nil {
				return fmt.Errorf("guard: %w", err)
			}
			a := r.Addr.Addr().Unmap()
			reject := &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}
			if proto == unix.IPPROTO_TCP {
				reject = &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: Comment(fmt.Sprintf("only vpnfwd reaches %s %s", r.Proto, r.Addr)),
				Exprs: Cat(Addr(netip.PrefixFrom(a, a.BitLen()), false), L4(proto), Ports(0, r.Addr.Port()),
					[]expr.Any{Meta(expr.MetaKeyMARK), Neq(U32(mark)), Count, reject})})
		}
	}
	return nil
}
