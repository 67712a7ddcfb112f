package killswitch

import (
	"errors"
	"fmt"
	"syscall"

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
	return replaceTable(table, len(rs) == 0, func(c *nftables.Conn, t *nftables.Table) error {
		return redirectRules(c, t, tun, rs)
	})
}

// replaceTable replaces the inet table named table in one transaction:
// the old one (if any) goes, and unless empty, build fills a new one.
func replaceTable(table string, empty bool, build func(*nftables.Conn, *nftables.Table) error) error {
	c, err := conn()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	if old, err := c.ListTableOfFamily(table, nftables.TableFamilyINet); err == nil && old != nil {
		c.DelTable(t)
	}
	if empty {
		if err := c.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
			return explain(err)
		}
		return nil
	}
	c.AddTable(t)
	if err := build(c, t); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return explain(err)
	}
	return nil
}

func redirectRules(c *nftables.Conn, t *nftables.Table, tun string, rs []PortRedirect) error {
	pol := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &pol})
	for _, r := range rs {
		proto, err := ipProto(r.Proto)
		if err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: comment(fmt.Sprintf("forwarded %s port %d to %d", r.Proto, r.From, r.To)), Exprs: []expr.Any{
			meta(expr.MetaKeyIIFNAME), eq(ifname(tun)),
			meta(expr.MetaKeyL4PROTO), eq([]byte{proto}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, eq(be16(r.From)),
			&expr.Immediate{Register: 1, Data: be16(r.To)},
			&expr.Redir{RegisterProtoMin: 1},
		}})
	}
	return nil
}

// ipProto is the IP protocol number of "tcp" or "udp".
func ipProto(name string) (byte, error) {
	switch name {
	case "tcp":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	}
	return 0, fmt.Errorf("protocol %q (want tcp or udp)", name)
}
