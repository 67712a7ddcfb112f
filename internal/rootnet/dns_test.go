package rootnet

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDNSForwarderInKillSwitchedNamespace: with the kill switch on, no
// lookup leaves outside the tunnel; vpnfwd's forwarder on 127.0.0.1:53
// answers plain DNS by asking the VPN's resolver (Debian's dnsmasq on the
// tunnel gateway) through the tunnel, over UDP and TCP.
func TestDNSForwarderInKillSwitchedNamespace(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "dnsmasq", "dig")
	v := NewVPN(t, n, false)
	bin := BuildVPNFWD(t, t.TempDir())
	// The same resolver answers inside the tunnel (the gateway) and, as a
	// home router would, on the client's own link.
	startResolver(n, v, GatewayIP, UnderVPN)
	waitFor(t, func() bool {
		out, err := n.Exec(v.Cli, "dig", "+time=1", "+tries=1", "+short", "@"+UnderVPN, "vpn.test")
		return err == nil && strings.Contains(out, InetAddr)
	})
	up := n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "static", "--port", "4000", "--killswitch",
		"--dns-listen", "127.0.0.1:53")
	waitForPort(t, n, v.Cli, bin)
	for _, proto := range []string{"+notcp", "+tcp"} {
		out, err := n.ExecUntil(v.Cli, "", InetAddr, "dig", "+time=2", "+tries=1", "+short", proto, "@127.0.0.1", "vpn.test")
		if err != nil {
			t.Errorf("dig %s through the forwarder: %q %v\n%s", proto, out, err, up.Out)
		}
	}
	// The resolver outside the tunnel stays out of reach.
	if out, err := n.Exec(v.Cli, "dig", "+time=1", "+tries=1", "+short", "@"+UnderVPN, "vpn.test"); err == nil && strings.Contains(out, InetAddr) {
		t.Errorf("a lookup left outside the tunnel: %q", out)
	}
	if _, err := up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Error(err)
	}
}
