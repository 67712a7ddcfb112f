package rootnet

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/killswitch"
	"github.com/vpnfwd/vpnfwd/tundev"
)

// The kernel data plane's device, as wg-quick would set it up: the
// tunnel's addresses on a TUN, everything without the WireGuard socket's
// mark routed into it, marked packets and the LAN still on the main
// table; a packet sent in the namespace comes out of the TUN; Close
// leaves nothing behind.
func TestTunDevice(t *testing.T) {
	n := New(t)
	ns, lan := n.NS("tunc"), n.NS("lan")
	n.Link(ns, "eth0", "192.168.77.2/24", lan, "eth0", "192.168.77.1/24")
	n.Must(ns, "ip", "route", "add", "default", "via", "192.168.77.1")
	const mark = 0x7670
	var dev *tundev.Device
	err := n.InNS(ns, func() (err error) {
		dev, err = tundev.Open(tundev.Config{Name: "vpnfwd0",
			Addresses: []netip.Prefix{netip.MustParsePrefix("10.2.0.2/32"), netip.MustParsePrefix("fd00:2::2/128")},
			Routes:    []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
			Mark:      mark})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			dev.Close()
		}
	}()
	if out := n.Must(ns, "ip", "addr", "show", "vpnfwd0"); !strings.Contains(out, "10.2.0.2/32") || !strings.Contains(out, "fd00:2::2/128") || !strings.Contains(out, "UP") {
		t.Errorf("addresses: %s", out)
	}
	// Route lookups only (nothing is sent): TEST-NET-3 goes to the tunnel,
	// the same with the mark to the LAN's gateway, the LAN stays on it.
	for _, c := range []struct{ args, want string }{
		{"203.0.113.9", "dev vpnfwd0 table 51820"},
		{"203.0.113.9 mark 0x7670", "via 192.168.77.1 dev eth0"},
		{"192.168.77.1", "dev eth0"},
		{"2001:db8::9", "dev vpnfwd0 table 51820"},
	} {
		out := n.Must(ns, append([]string{"ip", "route", "get"}, strings.Fields(c.args)...)...)
		if !strings.Contains(out, c.want) {
			t.Errorf("route get %s: %q, want %q", c.args, out, c.want)
		}
	}

	// A datagram sent in the namespace comes out of the TUN (where
	// wireguard-go would encrypt it); it never reaches a real network.
	got := make(chan netip.Addr, 16)
	go func() {
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		for {
			k, err := dev.TUN().Read(bufs, sizes, 16)
			if err != nil {
				close(got)
				return
			}
			for i := 0; i < k; i++ {
				p := bufs[i][16 : 16+sizes[i]]
				if len(p) >= 20 && p[0]>>4 == 4 {
					got <- netip.AddrFrom4([4]byte(p[16:20]))
				}
			}
		}
	}()
	if err := n.InNS(ns, func() error {
		c, err := net.Dial("udp", "203.0.113.9:9")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("through the tunnel"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("203.0.113.9")
	for timeout := time.After(10 * time.Second); ; {
		select {
		case a, ok := <-got:
			if !ok {
				t.Fatal("TUN closed before the datagram came out")
			}
			if a != want {
				continue
			}
		case <-timeout:
			t.Fatal("the datagram did not come out of the TUN")
		}
		break
	}

	closed = true
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := n.Exec(ns, "ip", "link", "show", "vpnfwd0"); err == nil {
		t.Errorf("device left after Close: %s", out)
	}
	for _, fam := range []string{"-4", "-6"} {
		if out := n.Must(ns, "ip", fam, "rule", "show"); strings.Contains(out, "51820") || strings.Contains(out, "suppress_prefixlength") {
			t.Errorf("rules left after Close (%s): %s", fam, out)
		}
	}
}

// The kill switch in the kernel data plane: with the tunnel's interface
// named, traffic into it leaves and peers come in through it, while the
// LAN (not allowed) stays shut; without it, the same packet is dropped.
func TestTunDeviceKillSwitch(t *testing.T) {
	n := New(t)
	ns, lan := n.NS("tunks"), n.NS("lan")
	n.Link(ns, "eth0", "192.168.78.2/24", lan, "eth0", "192.168.78.1/24")
	var dev *tundev.Device
	if err := n.InNS(ns, func() (err error) {
		dev, err = tundev.Open(tundev.Config{Name: "vpnfwd0", Addresses: []netip.Prefix{netip.MustParsePrefix("10.2.0.2/32")},
			Routes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	send := func(to string) error {
		return n.InNS(ns, func() error {
			c, err := net.Dial("udp", to)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("x"))
			return err
		})
	}
	apply := func(tunnel string) {
		t.Helper()
		if err := n.InNS(ns, func() error {
			killswitch.Remove(killswitch.DefaultTable)
			_, err := killswitch.Apply(killswitch.Config{Tunnel: tunnel})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	apply("")
	if err := send("203.0.113.9:9"); !errors.Is(err, syscall.EPERM) {
		t.Errorf("kill switch without the tunnel's interface: sending into the TUN gave %v, want EPERM (dropped)", err)
	}
	apply("vpnfwd0")
	if err := send("203.0.113.9:9"); err != nil {
		t.Errorf("kill switch with the tunnel's interface: sending into the TUN: %v", err)
	}
	if err := send("192.168.78.1:9"); !errors.Is(err, syscall.EPERM) {
		t.Errorf("the LAN is not allowed: got %v, want EPERM", err)
	}

	// A peer's datagram arriving through the TUN reaches a socket.
	var pc net.PacketConn
	if err := n.InNS(ns, func() (err error) { pc, err = net.ListenPacket("udp4", "10.2.0.2:6881"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pkt := udp4(netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("10.2.0.2"), 4000, 6881, []byte("peer"))
	buf := append(make([]byte, 16), pkt...)
	if _, err := dev.TUN().Write([][]byte{buf}, 16); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 64)
	k, from, err := pc.ReadFrom(b)
	if err != nil || string(b[:k]) != "peer" || !strings.HasPrefix(from.String(), "203.0.113.9:") {
		t.Errorf("inbound through the tunnel: %q from %v, %v", b[:k], from, err)
	}
	n.InNS(ns, func() error { return killswitch.Remove(killswitch.DefaultTable) })
}

// udp4 builds an IPv4 UDP packet (UDP checksum 0: none, allowed in IPv4).
func udp4(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}
