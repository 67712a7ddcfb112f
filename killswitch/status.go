package killswitch

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
)

// Info is what is installed.
type Info struct {
	Installed bool           `json:"installed"`
	Table     string         `json:"table"`
	Endpoint  netip.AddrPort `json:"endpoint,omitzero"`
	Rules     []string       `json:"rules"` // chain: comment
	Scope     string         `json:"scope"` // namespace | uid | cgroup
}

// Status reads vpnfwd's table back from the kernel.
func Status(table string) (Info, error) {
	if table == "" {
		table = DefaultTable
	}
	info := Info{Table: table, Rules: []string{}}
	c, err := conn()
	if err != nil {
		return info, err
	}
	t, err := c.ListTableOfFamily(table, nftables.TableFamilyINet)
	if err != nil && errors.Is(err, syscall.EPERM) {
		return info, explain(err)
	}
	if err != nil || t == nil {
		return info, nil // no such table
	}
	info.Installed = true
	info.Scope = "namespace"
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return info, explain(err)
	}
	for _, ch := range chains {
		if ch.Table.Name != table {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return info, explain(err)
		}
		for _, r := range rules {
			cm, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			info.Rules = append(info.Rules, ch.Name+": "+cm)
			if s, ok := strings.CutPrefix(cm, "vpnfwd wireguard endpoint "); ok {
				info.Endpoint, _ = netip.ParseAddrPort(s)
			}
			switch {
			case strings.HasPrefix(cm, "only_uid") && ch.Name == chainOutput:
				info.Scope = "uid"
			case strings.HasPrefix(cm, "only_cgroup") && ch.Name == chainOutput:
				info.Scope = "cgroup"
			}
		}
	}
	return info, nil
}
