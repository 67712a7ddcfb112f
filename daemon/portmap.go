package daemon

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/status"
)

// answerTable is tun mode's nftables table that takes the namespace's
// NAT-PMP and PCP requests to vpnfwd's responder.
func (d *Daemon) answerTable() string { return "vpnfwd_pmp_" + d.cfg.WireGuard.Tun }

// openResponder starts answering the apps in the namespace (tun mode:
// vpnfwd's own; exec: CMD's) that ask for a port, with the ports vpnfwd
// holds, in one table (portmap): by NAT-PMP and PCP, and in tun mode by
// UPnP IGD. A failure costs that feature only.
func (d *Daemon) openResponder() {
	if (!d.cfg.Forward.NATPMP && !d.cfg.Forward.UPnP) || (d.tun == nil && d.sandbox == nil) {
		return
	}
	// Who may have a held port is decided by the namespace's sockets (a
	// program listening on the port keeps it): vpnfwd's own namespace in
	// tun mode, the agent's in exec.
	sockets := "/proc/self/net"
	if d.sandbox != nil {
		sockets = d.sandbox.NetProc()
	}
	d.pmp = portmap.New(portmap.Config{Log: d.log.With("component", "nat-pmp"), Sockets: &portmap.CachedSockets{Dir: sockets},
		Changed: func(ms []portmap.Mapping) {
			d.tunPorts()
			d.sess.Note(session.Event{Kind: session.KindApps, At: time.Now(), Apps: appMappings(ms)})
		}})
	if d.cfg.Forward.NATPMP {
		d.openNATPMP()
	}
	if d.cfg.Forward.UPnP {
		d.openIGD()
	}
	if d.pmpConn == nil && d.igd == nil {
		d.pmp = nil
	}
}

// openNATPMP opens the NAT-PMP and PCP socket: the apps' requests to
// any gateway's 5351 are taken to a socket on 127.0.0.1:5351 there;
// vpnfwd's own requests (marked) still reach the provider's gateway.
func (d *Daemon) openNATPMP() {
	var pc net.PacketConn
	var err error
	if d.sandbox != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pc, err = d.sandbox.Answer(ctx, portmap.Port)
		cancel()
	} else {
		pc, err = net.ListenPacket("udp4", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), portmap.Port).String())
		if err == nil {
			if err = nft.AnswerLocally(d.answerTable(), portmap.Port, nft.OwnMark, nft.WireGuardMark); err != nil {
				pc.Close()
			}
		}
	}
	if err != nil {
		d.log.Warn("apps that ask for a port by NAT-PMP or PCP will not be answered", "err", err)
		return
	}
	// A flood from many sources fills a socket's receive queue before
	// the responder drops it request by request; a deeper queue (the
	// kernel caps it at net.core.rmem_max) leaves room for an app's
	// request among them.
	if u, ok := pc.(*net.UDPConn); ok {
		u.SetReadBuffer(4 << 20)
	}
	d.pmpConn = pc
	d.log.Info("answering the apps' NAT-PMP and PCP requests (any gateway's UDP 5351) with the port vpnfwd holds")
}

// fallbackGateway is exec's gateway when neither the provider nor the
// wg-quick file names one: link-local, never a real host.
var fallbackGateway = netip.AddrFrom4([4]byte{169, 254, 53, 51})

// appGateway is the gateway exec's default route names, where CMD's
// NAT-PMP and PCP clients send (and vpnfwd answers): the provider's
// NAT-PMP gateway, else the tunnel's IPv4 DNS server, else a link-local
// address. Any will do: every address's 5351 is answered inside.
func (d *Daemon) appGateway() netip.Addr {
	if !d.cfg.Forward.NATPMP {
		return netip.Addr{}
	}
	for _, e := range d.caps.ControlEndpoints() {
		if e.Network == "udp" && e.Addr.Port() == portmap.Port && e.Addr.Addr().Unmap().Is4() {
			return e.Addr.Addr().Unmap()
		}
	}
	for _, a := range d.cfg.WireGuard.DNSServers() {
		if a.Unmap().Is4() {
			return a.Unmap()
		}
	}
	return fallbackGateway
}

// closeResponder stops answering and removes tun mode's tables (exec's
// go with the namespace).
func (d *Daemon) closeResponder() {
	d.closeIGD()
	if d.pmpConn == nil {
		return
	}
	d.pmpConn.Close()
	if d.tun != nil {
		if err := nft.AnswerLocally(d.answerTable(), 0); err != nil {
			d.log.Error("removing the NAT-PMP table", "table", d.answerTable(), "err", err)
		}
	}
}

// offerPorts tells the responder which held ports apps may have: those
// vpnfwd's configuration sends nowhere in particular (no --forward port),
// each at the same public address.
func (d *Daemon) offerPorts(l provider.Lease) {
	if d.pmp == nil {
		return
	}
	ip := l.PublicIP
	if !ip.IsValid() {
		if p := d.publicIP.Load(); p != nil {
			ip, _ = netip.ParseAddr(p.IP)
		}
	}
	var slots []portmap.Slot
	for _, p := range l.Ports {
		s := portmap.Slot{Public: p.Public, Local: p.Local, Proto: p.Protocol}
		if d.targetPort != 0 || d.bridge != nil {
			s.Taken, s.Target = true, d.targetPort
		}
		slots = append(slots, s)
	}
	d.pmp.SetPorts(ip, slots)
}

// appMappings are the apps' mappings as the status and the
// "app_mappings" event show them.
func appMappings(ms []portmap.Mapping) []status.AppMapping {
	out := []status.AppMapping{}
	for _, m := range ms {
		out = append(out, status.AppMapping{Protocol: m.Proto, InternalPort: int(m.Internal), PublicPort: int(m.Public),
			Client: m.Client.String(), Via: m.Via, Expires: m.Expires})
	}
	return out
}
