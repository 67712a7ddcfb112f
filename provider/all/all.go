// Package all lists every provider vpnfwd ships, for the command line to
// pass to config and the daemon.
package all

import (
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/azirevpn"
	"github.com/vpnfwd/vpnfwd/provider/natpmp"
	"github.com/vpnfwd/vpnfwd/provider/perfectprivacy"
	"github.com/vpnfwd/vpnfwd/provider/pia"
	"github.com/vpnfwd/vpnfwd/provider/privatevpn"
	"github.com/vpnfwd/vpnfwd/provider/protonvpn"
	"github.com/vpnfwd/vpnfwd/provider/static"
)

// Providers are vpnfwd's providers, by name.
var Providers = provider.MustList(
	azirevpn.Info, natpmp.Info, perfectprivacy.Info, pia.Info, privatevpn.Info, protonvpn.Info,
	static.Info, static.AirVPN, static.Windscribe, static.TorGuard,
)
