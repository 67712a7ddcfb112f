package daemon

import (
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/natpmp"
	"github.com/vpnfwd/vpnfwd/provider/pia"
)

// testProviders are the providers the daemon's tests use.
var testProviders = provider.MustList(natpmp.Info, pia.Info)
