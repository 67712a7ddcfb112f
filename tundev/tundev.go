// Package tundev is the kernel data plane's device: a TUN in the current
// network namespace for wireguard-go, given the tunnel's addresses and MTU,
// with wg-quick's routing (a peer's default route goes in its own table,
// taken by every packet not carrying the WireGuard socket's mark; other
// allowed IPs are plain routes), and removed again on Close.
//
// Everything is done over netlink sockets opened by Open, so they act on
// the namespace Open ran in whatever thread later calls Close.
package tundev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Config describes the device.
type Config struct {
	Name      string         // interface name, e.g. vpnfwd0
	MTU       int            // 0: 1420
	Addresses []netip.Prefix // the tunnel's addresses (IPv4 and IPv6)
	Routes    []netip.Prefix // what goes through it: the peers' allowed IPs
	// Mark is the SO_MARK of the WireGuard socket: packets carrying it
	// use the main table, so the tunnel's own UDP never loops into it.
	// 0: no WireGuard socket lives in this namespace (vpnfwd exec's), and
	// every route goes in the main table, with no rules.
	Mark uint32
	// Table is the routing table for default routes (0: 51820, as
	// wg-quick).
	Table int
	// OwnMark, when set, is put on vpnfwd's own sockets through the TUN
	// (DialContext, ListenUDP), so that firewall rules can tell them from
	// every other program's (nft.Guard). It must differ from Mark.
	OwnMark uint32
	// Gateway, when set (IPv4), is named as the IPv4 default route's
	// gateway (on-link): programs that look for "the gateway" in the
	// routes (NAT-PMP and PCP clients) find one to ask.
	Gateway netip.Addr
}

// Priorities of the two rules per family, as wg-quick gets them: first
// "main, ignoring its default route" (so LAN and loopback keep working),
// then "no mark: the tunnel's table".
const (
	prioSuppress = 32764
	prioTunnel   = 32765
)

// Device is an open TUN with its addresses and routes.
type Device struct {
	tun   tun.Device
	name  string
	h     *netlink.Handle
	rules []*netlink.Rule
	// Warnings says what Open left out and why (IPv6 off in this
	// namespace).
	Warnings []string

	mu    sync.Mutex // guards addrs and address changes
	addrs []netip.Prefix

	ownMark uint32
}

// Check says, creating nothing, whether this process can make the TUN
// that up --tun needs: /dev/net/tun there and open to it, and
// CAP_NET_ADMIN held. up --tun calls it before anything else starts, so
// that a user without the rights hears about them first, not about a
// later step (a privileged DNS port) that would fail as well.
func Check() error {
	if err := checkDevice(); err != nil {
		return err
	}
	if has, err := HasNetAdmin(); err == nil && !has { // unknown: Open says what fails
		return errors.New("tun mode needs root or CAP_NET_ADMIN (in a container: --cap-add NET_ADMIN); without them use the netstack data plane (no --tun) or vpnfwd exec")
	}
	return nil
}

// HasNetAdmin says whether this process holds CAP_NET_ADMIN (tun mode
// and the kill switch need it).
func HasNetAdmin() (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return false, fmt.Errorf("reading this process's capabilities: %w", err)
	}
	return caps[0].Effective&(1<<unix.CAP_NET_ADMIN) != 0, nil
}

// CheckDevice says whether /dev/net/tun is there and open to this user
// (what exec needs without root: its TUN is made inside a user namespace,
// where the device's file mode still rules).
func CheckDevice() error { return checkDevice() }

// checkDevice says whether /dev/net/tun is there and open to this user.
func checkDevice() error {
	st, err := os.Stat("/dev/net/tun")
	if err != nil {
		return fmt.Errorf("tun mode needs /dev/net/tun (in a container: --device /dev/net/tun): %w", err)
	}
	if err := unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK); err != nil {
		return fmt.Errorf("/dev/net/tun (mode %04o) cannot be opened by this user: %w (up --tun needs root or CAP_NET_ADMIN; vpnfwd exec without root needs the device open to all, mode 0666, as Debian and most distributions ship it)", st.Mode().Perm(), err)
	}
	return nil
}

// Open creates the TUN and configures it. It needs CAP_NET_ADMIN and
// /dev/net/tun; the error says which is missing. On error nothing is left
// behind.
func Open(cfg Config) (*Device, error) {
	if cfg.Name == "" {
		return nil, errors.New("tun: no interface name")
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1420
	}
	if cfg.Table == 0 {
		cfg.Table = 51820
	}
	if err := checkDevice(); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("tun: netlink: %w", err)
	}
	t, err := tun.CreateTUN(cfg.Name, cfg.MTU)
	if err != nil {
		h.Close()
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("tun mode needs CAP_NET_ADMIN (in a container: --cap-add NET_ADMIN): creating %s: %w", cfg.Name, err)
		}
		return nil, fmt.Errorf("creating TUN %s: %w", cfg.Name, err)
	}
	d := &Device{tun: t, name: cfg.Name, h: h, ownMark: cfg.OwnMark}
	if err := d.configure(cfg); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Device) configure(cfg Config) error {
	link, err := d.h.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("tun: %s: %w", d.name, err)
	}
	if !ipv6On() {
		// Docker turns IPv6 off in most containers: nothing IPv6 can
		// leave then, so there is nothing to route into the tunnel.
		cfg.Addresses, cfg.Routes = only4(cfg.Addresses), only4(cfg.Routes)
		d.Warnings = append(d.Warnings, "IPv6 is off in this network namespace: the tunnel carries IPv4 only")
	}
	for _, a := range cfg.Addresses {
		if err := d.h.AddrAdd(link, d.addr(a)); err != nil {
			return fmt.Errorf("tun: address %s: %w", a, err)
		}
		d.addrs = append(d.addrs, a)
	}
	if err := d.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("tun: bringing %s up: %w", d.name, err)
	}
	idx := link.Attrs().Index
	ruled := map[int]bool{}
	for _, r := range cfg.Routes {
		r = r.Masked()
		route := &netlink.Route{LinkIndex: idx, Dst: ipNet(r), Scope: netlink.SCOPE_LINK}
		if r.Bits() == 0 && r.Addr().Is4() && cfg.Gateway.Is4() {
			route.Gw, route.Scope, route.Flags = cfg.Gateway.AsSlice(), netlink.SCOPE_UNIVERSE, int(netlink.FLAG_ONLINK)
		}
		if r.Bits() == 0 && cfg.Mark != 0 {
			route.Table = cfg.Table
			fam := family(r.Addr())
			if !ruled[fam] {
				ruled[fam] = true
				if err := d.addRules(fam, cfg); err != nil {
					return err
				}
			}
		}
		if err := d.h.RouteReplace(route); err != nil {
			return fmt.Errorf("tun: route %s: %w", r, err)
		}
	}
	return nil
}

// addRules adds wg-quick's two rules for one address family.
func (d *Device) addRules(fam int, cfg Config) error {
	tunnel := netlink.NewRule()
	tunnel.Family, tunnel.Priority, tunnel.Table = fam, prioTunnel, cfg.Table
	tunnel.Mark, tunnel.Invert = cfg.Mark, true
	mask := ^uint32(0)
	tunnel.Mask = &mask
	suppress := netlink.NewRule()
	suppress.Family, suppress.Priority, suppress.Table = fam, prioSuppress, unix.RT_TABLE_MAIN
	suppress.SuppressPrefixlen = 0
	for _, r := range []*netlink.Rule{tunnel, suppress} {
		// The same rule left by a vpnfwd that was killed (kill -9 takes
		// the TUN but not the rules) goes first.
		for d.h.RuleDel(r) == nil {
		}
		if err := d.h.RuleAdd(r); err != nil {
			return fmt.Errorf("tun: routing rule: %w", err)
		}
		d.rules = append(d.rules, r)
	}
	return nil
}

// TUN is the device for wireguard-go.
func (d *Device) TUN() tun.Device { return d.tun }

// Name is the interface's name.
func (d *Device) Name() string { return d.name }

// Close removes the rules and the device (and with it its addresses and
// routes).
func (d *Device) Close() error {
	var errs []error
	for _, r := range d.rules {
		if err := d.h.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("tun: removing routing rule: %w", err))
		}
	}
	d.rules = nil
	if err := d.tun.Close(); err != nil {
		errs = append(errs, err)
	}
	d.h.Close()
	return errors.Join(errs...)
}

// ipv6On reports whether this namespace has IPv6 (a container may have it
// off: net.ipv6.conf.all.disable_ipv6 = 1).
func ipv6On() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6")
	return err == nil && len(b) > 0 && b[0] == '0'
}

func only4(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() {
			out = append(out, p)
		}
	}
	return out
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
