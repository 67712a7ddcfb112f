// Package protonvpn is ProtonVPN's port forwarding: NAT-PMP inside the
// tunnel with Proton's conventions (gateway 10.2.0.1, internal port 0,
// 60 s leases, the same random port inside and out).
package protonvpn

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/natpmp"
)

// Gateway is Proton's in-tunnel gateway and DNS server.
const Gateway = "10.2.0.1"

// Conventions are Proton's twists on NAT-PMP.
//
// They follow Proton's own Linux client (and its documented manual
// steps: natpmpc -a 1 0 udp 60 -g 10.2.0.1, then tcp, every 45 s): UDP
// first, public port 1 and private 0 on the first request, the held port
// on renewals, 60-s leases renewed every 45 s.
var Conventions = natpmp.Conventions{
	Name:            "protonvpn",
	ZeroInternal:    true,
	UDPFirst:        true,
	FirstSuggestion: 1,
	DefaultLifetime: 60 * time.Second,
	RenewEvery:      45 * time.Second,
	Refused: func(gw netip.AddrPort) string {
		return fmt.Sprintf("NAT-PMP refused on %s: this Proton WireGuard key was generated without NAT-PMP, or the server is not a P2P server; "+
			"download a new config from account.protonvpn.com with \"NAT-PMP (Port Forwarding)\" on, for a P2P server", gw)
	},
}

// Info describes the provider.
var Info = provider.Info{
	Name:    "protonvpn",
	Summary: "ProtonVPN (P2P servers), NAT-PMP inside the tunnel",
	Needs:   "the WireGuard config from Proton's account page with \"NAT-PMP (Port Forwarding)\" on",
	Port:    "random, chosen by Proton; kept while renewed",
	Renewal: "every 45 s (60 s leases), as Proton's client; the mapping is also asked for again every 1.5 s by the port check",
	Options: natpmp.Options,
	New: func(env provider.Env) (provider.Provider, error) {
		if env.Settings.String("gateway") == "" {
			env.Settings = env.Settings.With("gateway", Gateway)
		}
		return natpmp.New(env, Conventions)
	},
}
