package daemon

// The providers register themselves (cmd/vpnfwd imports them all).
import (
	_ "github.com/vpnfwd/vpnfwd/provider/natpmp"
	_ "github.com/vpnfwd/vpnfwd/provider/pia"
)
