package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// LoopbackOnly drops the TCP connections to port that arrive on any
// interface but loopback: a server listening on every address of this
// namespace (so that programs whose sockets are bound to an interface
// reach it at that interface's address) is still reached from this
// namespace alone. A filter table of its own, named table; port 0
// removes it.
func LoopbackOnly(table string, port uint16) error {
	return ReplaceTable(table, port == 0, func(c *nftables.Conn, t *nftables.Table) error {
		pol := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &pol})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: Comment(fmt.Sprintf("tcp %d is for this namespace's programs only (vpnfwd)", port)),
			Exprs: Cat(L4(unix.IPPROTO_TCP), Ports(0, port), []expr.Any{Meta(expr.MetaKeyIIFNAME), Neq(IfName("lo")), Count, &expr.Verdict{Kind: expr.VerdictDrop}})})
		return nil
	})
}
