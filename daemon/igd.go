package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/upnp"
)

// igdResponder is the UPnP IGD of tun mode's namespace (or exec's): its
// SSDP socket on 127.0.0.1:1900 (the namespace's M-SEARCH to 239.255.255.250:1900,
// or any address's 1900, is taken there) and its HTTP listener on an
// ephemeral port of every address (an app bound to its interface reaches
// it at that interface's address), which an nftables table and the
// server itself keep to this namespace's own connections.
type igdResponder struct {
	srv *upnp.Server
	l   net.Listener
	pc  net.PacketConn
}

// ssdpTable is tun mode's nftables table that takes the namespace's SSDP
// to vpnfwd's IGD; igdTable drops connections to its HTTP port from
// other hosts.
func (d *Daemon) ssdpTable() string { return "vpnfwd_ssdp_" + d.cfg.WireGuard.Tun }
func (d *Daemon) igdTable() string  { return "vpnfwd_igd_" + d.cfg.WireGuard.Tun }

// openIGD starts the UPnP IGD on the table d.pmp: in tun mode in
// vpnfwd's namespace, in exec inside CMD's (the agent opens its sockets
// and tables there).
func (d *Daemon) openIGD() {
	cfg := upnp.Config{Gateway: d.pmp, Log: d.log.With("component", "upnp")}
	var pc net.PacketConn
	var l net.Listener
	var err error
	if d.sandbox != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pc, err = d.sandbox.Answer(ctx, upnp.SSDPPort)
		if err == nil {
			if l, err = d.sandbox.ListenLocal(ctx); err != nil {
				pc.Close()
			}
		}
		cancel()
		cfg.Owner = portmap.ProcSockets(d.sandbox.NetProc()).TCPOwner
		cfg.Local = d.sandboxAddr
	} else {
		pc, l, err = d.openIGDHere()
		cfg.Owner = portmap.ProcSockets("/proc/self/net").TCPOwner
	}
	if err != nil {
		d.log.Warn("apps that ask for a port by UPnP will not be answered", "err", err)
		return
	}
	d.igd = &igdResponder{srv: upnp.New(cfg), l: l, pc: pc}
	d.log.Info("answering the apps' UPnP IGD discovery (SSDP, any address's UDP 1900) and requests with the port vpnfwd holds",
		"igd", "http://127.0.0.1:"+strconv.Itoa(l.Addr().(*net.TCPAddr).Port)+"/rootDesc.xml")
}

// sandboxAddr says whether a is an address of exec's namespace.
func (d *Daemon) sandboxAddr(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, p := range d.sandbox.Addresses() {
		if p.Addr().Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// openIGDHere opens tun mode's IGD sockets in vpnfwd's namespace, and
// its tables.
func (d *Daemon) openIGDHere() (net.PacketConn, net.Listener, error) {
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	// No SO_REUSEADDR: with it another program here could bind
	// 127.0.0.1:1900 too and take the apps' searches. libtorrent binds
	// its own SSDP socket to 1900 of each interface's address, which does
	// not clash with 127.0.0.1; a program binding 0.0.0.0:1900 does.
	pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(lo, upnp.SSDPPort).String())
	if err != nil {
		return nil, nil, fmt.Errorf("another program has UDP 127.0.0.1:1900: %w", err)
	}
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err == nil {
		err = nft.LoopbackOnly(d.igdTable(), uint16(l.Addr().(*net.TCPAddr).Port))
		if err == nil {
			err = nft.AnswerLocally(d.ssdpTable(), upnp.SSDPPort, nft.OwnMark, nft.WireGuardMark)
		}
		if err != nil {
			l.Close()
			nft.LoopbackOnly(d.igdTable(), 0)
		}
	}
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, l, nil
}

// closeIGD stops the IGD and removes its table.
func (d *Daemon) closeIGD() {
	if d.igd == nil {
		return
	}
	d.igd.l.Close()
	d.igd.pc.Close()
	if d.tun == nil {
		return // exec's tables go with its namespace
	}
	if err := nft.AnswerLocally(d.ssdpTable(), 0); err != nil {
		d.log.Error("removing the SSDP table", "table", d.ssdpTable(), "err", err)
	}
	if err := nft.LoopbackOnly(d.igdTable(), 0); err != nil {
		d.log.Error("removing the IGD's table", "table", d.igdTable(), "err", err)
	}
}

// serveResponders runs the NAT-PMP/PCP socket and the IGD until ctx
// ends (or their sockets close); the table's mappings expire every
// second meanwhile.
func (d *Daemon) serveResponders(ctx context.Context, goFunc func(func())) {
	if d.pmp == nil {
		return
	}
	if d.pmpConn != nil {
		goFunc(func() { d.pmp.Serve(d.pmpConn) }) // expires too
	} else {
		goFunc(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					d.pmp.Expire()
				}
			}
		})
	}
	if d.igd != nil {
		goFunc(func() {
			if err := d.igd.srv.Serve(ctx, d.igd.l, d.igd.pc); err != nil && ctx.Err() == nil {
				d.log.Debug("UPnP IGD stopped", "err", err)
			}
		})
	}
}
