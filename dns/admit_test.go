package dns

import (
	"net"
	"net/netip"
	"testing"
)

// Off loopback only the allowed networks are answered, and each client
// only up to its rate: the forwarder is no amplifier for strangers.
func TestForwarderAllowAndRate(t *testing.T) {
	f := &Forwarder{Allow: []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")}, PerClient: 5}
	f.init()
	udp := func(ip string) net.Addr { return &net.UDPAddr{IP: net.ParseIP(ip), Port: 5353} }
	if !f.admit(udp("127.0.0.1")) || !f.admit(udp("172.17.0.9")) {
		t.Error("loopback or an allowed client refused")
	}
	if f.admit(udp("192.0.2.1")) || f.admit(&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}) {
		t.Error("a stranger answered")
	}
	answered := 0
	for range 100 {
		if f.admit(udp("172.17.0.10")) {
			answered++
		}
	}
	if answered > 10 || answered < 5 {
		t.Errorf("a burst of 100 at 5/s: %d answered, want the burst of 10 at most", answered)
	}
}
