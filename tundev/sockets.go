package tundev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The kernel data plane's sockets: what vpnfwd itself sends through the
// tunnel (the provider's port requests, the DNS forwarder's queries, the
// liveness checks, the proxies) uses ordinary kernel sockets bound to the
// TUN (SO_BINDTODEVICE). Bound, they leave through the tunnel whatever the
// routes say, so a missing or removed route can never send them out the
// real interface; they fail instead.

// DialContext dials addr through the TUN.
func (d *Device) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	dl := net.Dialer{Control: d.bind}
	c, err := dl.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("through the tunnel (%s): %w", d.name, err)
	}
	return c, nil
}

// ListenUDP opens a UDP socket on ap whose datagrams leave through the TUN
// (no address: the tunnel's IPv4 address, for the bridge).
func (d *Device) ListenUDP(ap netip.AddrPort) (net.PacketConn, error) {
	if !ap.Addr().IsValid() && ap.Port() != 0 {
		a, err := d.addr4()
		if err != nil {
			return nil, err
		}
		ap = netip.AddrPortFrom(a, ap.Port())
	}
	lc := net.ListenConfig{Control: d.bind}
	network := "udp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		network = "udp6"
	}
	return lc.ListenPacket(context.Background(), network, ap.String())
}

// ListenTCP listens on the tunnel's IPv4 address (not on all addresses,
// so that a service on 127.0.0.1 with the same port is no conflict), for
// the bridge (forward.StreamListener).
func (d *Device) ListenTCP(port uint16) (net.Listener, error) {
	a, err := d.addr4()
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: d.bind}
	return lc.Listen(context.Background(), "tcp4", netip.AddrPortFrom(a, port).String())
}

// addr4 is the tunnel's first IPv4 address.
func (d *Device) addr4() (netip.Addr, error) {
	for _, p := range d.Addresses() {
		if p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("the tunnel %s has no IPv4 address to listen on", d.name)
}

// Resolve looks host up with the system's resolver (in tun mode
// /etc/resolv.conf names vpnfwd's forwarder or the tunnel's DNS, both
// reached through the TUN).
func (d *Device) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

func (d *Device) bind(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, d.name)
		if serr == nil && d.ownMark != 0 {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(d.ownMark))
		}
	})
	return errors.Join(err, serr)
}

// Addresses are the TUN's tunnel addresses, as configured.
func (d *Device) Addresses() []netip.Prefix {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.Prefix(nil), d.addrs...)
}

// SetAddresses moves the TUN to new tunnel addresses (a provider that
// registered a fresh key got new ones): the new are added before the old
// are removed.
func (d *Device) SetAddresses(addrs []netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	link, err := d.h.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("tun: %s: %w", d.name, err)
	}
	keep := map[netip.Prefix]bool{}
	for _, a := range addrs {
		keep[a] = true
		if err := d.h.AddrReplace(link, d.addr(a)); err != nil {
			return fmt.Errorf("tun: address %s: %w", a, err)
		}
	}
	for _, a := range d.addrs {
		if !keep[a] {
			if err := d.h.AddrDel(link, d.addr(a)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("tun: removing address %s: %w", a, err)
			}
		}
	}
	d.addrs = append([]netip.Prefix(nil), addrs...)
	return nil
}

func (d *Device) addr(a netip.Prefix) *netlink.Addr {
	addr := &netlink.Addr{IPNet: ipNet(a)}
	if a.Addr().Is6() {
		addr.Flags = unix.IFA_F_NODAD // usable at once, as wg-quick's addresses are
	}
	return addr
}
