// Package testkit holds helpers that tests of several packages share: a
// local service that answers, a goroutine-leak check, dialling the
// in-process VPN server's public ports. Only tests import it.
package testkit

import (
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
)

// EchoService is a local service on 127.0.0.1 that answers a TCP line and
// a UDP datagram with "service got: " and what it got (demo.Service). It
// closes when the test ends.
func EchoService(t testing.TB) (addr string, port uint16) {
	t.Helper()
	svc, err := demo.StartService()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc.Addr, netip.MustParseAddrPort(svc.Addr).Port()
}

// TCP, UDP and SOCKS are demo's internet peer and proxy user.
var (
	TCP   = demo.TCP
	UDP   = demo.UDP
	SOCKS = demo.SOCKS
)

// PublicAddr is where the in-process VPN server's public port is reached.
func PublicAddr(port uint16) string {
	return net.JoinHostPort(demo.PublicBind.String(), strconv.Itoa(int(port)))
}

// LeakMarkers are frames that only vpnfwd's own running parts have (the
// in-process VPN server uses netstack and wg too, so those don't count).
var LeakMarkers = []string{"vpnfwd/session.", "vpnfwd/forward.", "vpnfwd/publish.", "vpnfwd/api.", "vpnfwd/daemon.(*Daemon)"}

// CheckNoLeaks fails the test if goroutines of a stopped vpnfwd are still
// running 2 s after it returned: every goroutine must have an owner that
// waited for it.
func CheckNoLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, m := range LeakMarkers {
				if strings.Contains(g, m) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines outlived vpnfwd:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
