// Package killswitch keeps everything but vpnfwd's own WireGuard socket
// from leaving the host or network namespace, with nftables rules in a
// table of their own, over netlink (no nft binary). Rules go in atomically
// before the first packet, the endpoint rule is swapped atomically when the
// endpoint moves, and the rules stay if vpnfwd dies: only Remove (or
// `vpnfwd killswitch off`) takes them out. It needs CAP_NET_ADMIN.
// It is the policy only: the marks, table plumbing and the redirect and
// guard tables are package nft's.
package killswitch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

	"github.com/vpnfwd/vpnfwd/nft"
)

// DefaultTable is the nftables table (family inet) vpnfwd owns.
const DefaultTable = "vpnfwd"

// DefaultMark is the SO_MARK vpnfwd puts on its own sockets.
const DefaultMark = nft.WireGuardMark

// Config describes the rules.
type Config struct {
	Table string
	Mark  uint32
	// Endpoint may be left unset and given later with SetEndpoint: until
	// then nothing but vpnfwd's own marked DNS lookups leaves.
	Endpoint netip.AddrPort
	AllowLAN []netip.Prefix
	// OnlyUID confines only this user's traffic (a desktop where only the
	// torrent client must be kept in); nil confines the whole namespace.
	OnlyUID *uint32
	// OnlyCgroup confines only this cgroup v2 path (e.g.
	// "system.slice/qbittorrent.service").
	OnlyCgroup string
	// AllowMarkedTCP lets vpnfwd's own marked sockets reach these TCP ports
	// before the tunnel exists (a provider's login API).
	AllowMarkedTCP []uint16
	// Tunnel, in the kernel data plane, is the TUN interface's name:
	// everything may leave and arrive through it (it is the tunnel).
	Tunnel string

	cgroupID    uint64
	cgroupLevel uint32
}

func (c *Config) defaults() error {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.Mark == 0 {
		c.Mark = DefaultMark
	}
	if c.OnlyCgroup != "" {
		id, level, err := cgroupID(c.OnlyCgroup)
		if err != nil {
			return err
		}
		c.cgroupID, c.cgroupLevel = id, level
	}
	return nil
}

// cgroupID is the id (the inode of its directory) and depth of a cgroup v2
// path, which is what nftables matches.
func cgroupID(path string) (uint64, uint32, error) {
	root, err := CgroupV2Root()
	if err != nil {
		return 0, 0, err
	}
	rel := strings.Trim(strings.TrimPrefix(path, root), "/")
	fi, err := os.Stat(filepath.Join(root, rel))
	if err != nil {
		return 0, 0, fmt.Errorf("kill switch: only_cgroup %q: %w (want a cgroup v2 path below %s)", path, err, root)
	}
	return fi.Sys().(*syscall.Stat_t).Ino, uint32(strings.Count(rel, "/") + 1), nil
}

// FollowCgroup keeps the only_cgroup scope on the cgroup's current id
// until ctx ends: when systemd restarts the unit, the cgroup at the same
// path is a new one with a new id, which the rules would no longer match.
// It checks every interval (a quarter second is typical) and swaps the
// scope rules in one batch; onChange hears each swap or error. Without
// only_cgroup it returns at once.
func (k *KillSwitch) FollowCgroup(ctx context.Context, every time.Duration, onChange func(id uint64, err error)) {
	if k.cfg.OnlyCgroup == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.mu.Lock()
		cfg := k.cfg
		k.mu.Unlock()
		id, _, err := cgroupID(cfg.OnlyCgroup)
		if err != nil || id == cfg.cgroupID {
			continue // gone (the unit is stopped) or unchanged
		}
		cfg.cgroupID = id
		if err := k.rescope(cfg); err != nil {
			onChange(id, err)
			continue
		}
		k.mu.Lock()
		k.cfg.cgroupID = id
		k.mu.Unlock()
		onChange(id, nil)
	}
}

// rescope rewrites the output chain's scope rules for cfg in one batch.
func (k *KillSwitch) rescope(cfg Config) error {
	c, err := conn()
	if err != nil {
		return err
	}
	ch := &nftables.Chain{Name: chainOutput, Table: k.table}
	c.FlushChain(ch)
	for _, r := range scopeRules(cfg) {
		c.AddRule(&nftables.Rule{Table: k.table, Chain: ch, Exprs: r.exprs, UserData: nft.Comment(r.comment)})
	}
	if err := c.Flush(); err != nil {
		return explain(err)
	}
	return nil
}

// CgroupV2Root is where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems).
func CgroupV2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("finding cgroup v2: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		// ... mountpoint ... - fstype source options
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4], nil
		}
	}
	return "", errors.New("kill switch: only_cgroup needs cgroup v2, which is not mounted here")
}

// KillSwitch is installed rules.
type KillSwitch struct {
	mu    sync.Mutex // guards cfg's Endpoint and cgroupID
	cfg   Config
	table *nftables.Table
}

// Apply installs the rules in one atomic batch, replacing an earlier
// vpnfwd table (one left by a crash or --lockdown). If it fails, nothing
// changed.
func Apply(cfg Config) (*KillSwitch, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c, err := conn()
	if err != nil {
		return nil, err
	}
	t := &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyINet}
	if old, err := c.ListTableOfFamily(cfg.Table, nftables.TableFamilyINet); err == nil && old != nil {
		// A table left by a crash or --lockdown is replaced; one that a
		// running vpnfwd holds is not.
		if !ours(c, old) {
			return nil, fmt.Errorf("kill switch: table inet %s exists and is not vpnfwd's; give vpnfwd a table of its own (--killswitch-table NAME)", cfg.Table)
		}
		if pid := owner(c, old); pid != 0 && pid != os.Getpid() && running(pid) {
			return nil, fmt.Errorf("kill switch: another vpnfwd (pid %d) holds table inet %s in this network namespace; stop it, or give this one a table of its own (--killswitch-table NAME)", pid, cfg.Table)
		}
		c.DelTable(old)
	}
	c.AddTable(t)
	own := c.AddChain(&nftables.Chain{Name: chainOwner, Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: own, Exprs: []expr.Any{&expr.Counter{}}, UserData: nft.Comment(fmt.Sprintf("pid %d", os.Getpid()))})
	out := c.AddChain(baseChain(t, chainOutput, nftables.ChainHookOutput))
	ep := c.AddChain(&nftables.Chain{Name: chainEndpoint, Table: t})
	add := func(ch *nftables.Chain, rs []rule) {
		for _, r := range rs {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r.exprs, UserData: nft.Comment(r.comment)})
		}
	}
	if cfg.Endpoint.IsValid() {
		add(ep, []rule{endpointRule(cfg.Mark, cfg.Endpoint)})
	}
	if cfg.scoped() {
		add(c.AddChain(&nftables.Chain{Name: chainConfined, Table: t}), outputRules(cfg))
		add(out, scopeRules(cfg))
	} else {
		add(out, outputRules(cfg))
	}
	if !cfg.scoped() {
		add(c.AddChain(baseChain(t, chainInput, nftables.ChainHookInput)), inputRules(cfg))
		add(c.AddChain(baseChain(t, chainForward, nftables.ChainHookForward)), forwardRules(cfg))
	}
	if err := c.Flush(); err != nil {
		return nil, explain(err)
	}
	return &KillSwitch{cfg: cfg, table: t}, nil
}

// owner is the pid recorded in a table's owner chain (0: none).
func owner(c *nftables.Conn, t *nftables.Table) int {
	rules, err := c.GetRules(t, &nftables.Chain{Name: chainOwner, Table: t})
	if err != nil || len(rules) == 0 {
		return 0
	}
	s, _ := userdata.GetString(rules[0].UserData, userdata.TypeComment)
	var pid int
	fmt.Sscanf(s, "pid %d", &pid)
	return pid
}

// ours says whether a table is one vpnfwd made: it has the owner chain
// Apply puts in every table.
func ours(c *nftables.Conn, t *nftables.Table) bool {
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return false
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == t.Name && ch.Name == chainOwner {
			return true
		}
	}
	return false
}

// running reports whether pid is a live vpnfwd (not a reused pid).
func running(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.Contains(string(comm), "vpnfwd")
}

// Mark is the SO_MARK the rules let through to the endpoint.
func (k *KillSwitch) Mark() uint32 { return k.cfg.Mark }

// SetEndpoint swaps the endpoint rule in one atomic batch: there is no
// moment when the old and new endpoint are both closed or both open.
func (k *KillSwitch) SetEndpoint(ep netip.AddrPort) error {
	c, err := conn()
	if err != nil {
		return err
	}
	ch := &nftables.Chain{Name: chainEndpoint, Table: k.table}
	c.FlushChain(ch)
	r := endpointRule(k.cfg.Mark, ep)
	c.AddRule(&nftables.Rule{Table: k.table, Chain: ch, Exprs: r.exprs, UserData: nft.Comment(r.comment)})
	if err := c.Flush(); err != nil {
		return explain(err)
	}
	k.mu.Lock()
	k.cfg.Endpoint = ep
	k.mu.Unlock()
	return nil
}

// Remove deletes the rules.
func (k *KillSwitch) Remove() error { return Remove(k.cfg.Table) }

// Remove deletes vpnfwd's table and checks that it is gone; no table is
// not an error.
func Remove(table string) error {
	if table == "" {
		table = DefaultTable
	}
	c, err := conn()
	if err != nil {
		return err
	}
	old, err := c.ListTableOfFamily(table, nftables.TableFamilyINet)
	if err != nil || old == nil {
		return nil // none: nothing to remove
	}
	if !ours(c, old) {
		return fmt.Errorf("kill switch: table inet %s is not vpnfwd's (it has no owner chain): not deleting it", table)
	}
	c.DelTable(old)
	if err := c.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
		return explain(err)
	}
	info, err := Status(table)
	if err != nil {
		return err
	}
	if info.Installed {
		return fmt.Errorf("kill switch: table inet %s is still there after deleting it", table)
	}
	return nil
}

// Attach returns a handle on an installed table (another process's, for
// leak-check).
func Attach(table string) *KillSwitch {
	if table == "" {
		table = DefaultTable
	}
	return &KillSwitch{cfg: Config{Table: table, Mark: DefaultMark}, table: &nftables.Table{Name: table, Family: nftables.TableFamilyINet}}
}

// CloseEndpoint empties the endpoint chain: nothing at all leaves (a
// simulated outage). SetEndpoint opens it again.
func (k *KillSwitch) CloseEndpoint() error {
	c, err := conn()
	if err != nil {
		return err
	}
	c.FlushChain(&nftables.Chain{Name: chainEndpoint, Table: k.table})
	if err := c.Flush(); err != nil {
		return explain(err)
	}
	return nil
}

// conn and explain name the kill switch in nftables' errors.
func conn() (*nftables.Conn, error) {
	c, err := nft.Conn()
	if err != nil {
		return nil, fmt.Errorf("kill switch: %w", err)
	}
	return c, nil
}

func explain(err error) error { return fmt.Errorf("kill switch: %w", nft.Explain(err)) }
