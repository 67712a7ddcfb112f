package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vpnfwd/vpnfwd/killswitch"
	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/tunnel"
	"github.com/vpnfwd/vpnfwd/wg"
)

// aroundTunnel says how vpnfwd's own packets go around the tunnel: the
// WireGuard device's options (its socket's mark, how the endpoint's name
// is looked up) and the dialer for a provider's login. The kill switch
// goes in here, before anything is sent, a provider's login included.
func (d *Daemon) aroundTunnel(info provider.Info, resolve wg.Resolver) (wg.Options, provider.Dialer, error) {
	cfg := d.cfg
	wopts := wg.Options{Logger: d.log.With("component", "wireguard"), Resolve: resolve}
	switch {
	case cfg.KillSwitch.Enabled:
		var login []uint16
		if info.LoginPorts != nil {
			login = info.LoginPorts(cfg.Provider.Settings)
		}
		if err := d.startKillSwitch(&wopts, login); err != nil {
			return wopts, nil, err
		}
		return wopts, nft.MarkedDialer(d.ks.Mark()), nil
	case cfg.WireGuard.Tun != "":
		// The routing rules send every unmarked packet into the TUN: the
		// WireGuard socket and a provider's login carry the mark.
		wopts.FwMark = tunMark
		if wopts.Resolve == nil {
			// The endpoint's name is looked up around the tunnel, as
			// wg-quick does before it routes: through it, the lookup
			// would wait on the handshake it is needed for.
			res := nft.MarkedResolver(tunMark, d.systemNameservers())
			wopts.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return res.LookupNetIP(ctx, "ip", host)
			}
		}
		return wopts, nft.MarkedDialer(tunMark), nil
	}
	return wopts, &net.Dialer{}, nil
}

// startKillSwitch installs the rules before the tunnel sends anything: at
// first with no endpoint open, so only vpnfwd's own (marked) lookups of the
// endpoint name can leave; the device then reports each endpoint through
// OnEndpoint before using it, and its socket carries the mark.
func (d *Daemon) startKillSwitch(wopts *wg.Options, loginPorts []uint16) error {
	k := d.cfg.KillSwitch
	kc := killswitch.Config{Table: k.Table, Mark: nft.WireGuardMark, Tunnel: d.cfg.WireGuard.Tun, OnlyCgroup: k.OnlyCgroup, AllowMarkedTCP: loginPorts}
	for _, l := range k.AllowLAN {
		p, _ := tunnel.ParsePrefix(l)
		kc.AllowLAN = append(kc.AllowLAN, netip.Prefix(p))
	}
	if k.AllowLocalSubnets {
		local := localSubnets(d.cfg.WireGuard.Tun)
		kc.AllowLAN = append(kc.AllowLAN, local...)
		d.log.Info("kill switch: this namespace's own subnets are let through", "subnets", fmt.Sprint(local))
	}
	if k.OnlyUID != nil {
		u := uint32(*k.OnlyUID)
		kc.OnlyUID = &u
	}
	ks, err := killswitch.Apply(kc)
	if err != nil {
		return err
	}
	d.ks = ks
	scope := "the whole network namespace"
	switch {
	case k.OnlyUID != nil:
		scope = fmt.Sprintf("user %d", *k.OnlyUID)
	case k.OnlyCgroup != "":
		scope = "cgroup " + k.OnlyCgroup
	}
	d.log.Info("kill switch on: nothing but vpnfwd's WireGuard socket may leave", "scope", scope, "allow_lan", strings.Join(k.AllowLAN, ","))
	wopts.FwMark = ks.Mark()
	if wopts.Resolve == nil {
		res := nft.MarkedResolver(ks.Mark(), d.systemNameservers())
		wopts.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			d.log.Info("resolving the endpoint outside the tunnel (the kill switch lets only vpnfwd's own lookups out)", "host", host)
			return res.LookupNetIP(ctx, "ip", host)
		}
	}
	wopts.OnEndpoint = func(ap netip.AddrPort) error {
		if err := ks.SetEndpoint(ap); err != nil {
			return err
		}
		d.log.Info("kill switch lets the WireGuard socket reach the endpoint", "endpoint", ap.String())
		return nil
	}
	return nil
}

func (d *Daemon) stopKillSwitch() {
	if d.ks == nil {
		return
	}
	if d.cfg.KillSwitch.Lockdown {
		d.log.Warn("kill switch kept after exit (lockdown): nothing leaves until vpnfwd runs again or 'vpnfwd killswitch off'")
		return
	}
	if err := d.ks.Remove(); err != nil {
		d.log.Error("removing the kill switch", "err", err)
		return
	}
	d.log.Info("kill switch removed")
	d.ks = nil
}

// localSubnets are the subnets of this namespace's interfaces but loopback
// and the tunnel's (a container's network: the host reaches its published
// ports from there), link-local ones left out.
func localSubnets(tun string) []netip.Prefix {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 || ifc.Name == tun {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(n.IP)
			ones, _ := n.Mask.Size()
			ip = ip.Unmap()
			if ip.IsLinkLocalUnicast() || ip.IsLoopback() {
				continue
			}
			p := netip.PrefixFrom(ip, ones).Masked()
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}
