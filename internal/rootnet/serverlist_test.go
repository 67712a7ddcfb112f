package rootnet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGluetunServerCountries: gluetun's ProtonVPN compose environment
// names no server, only SERVER_COUNTRIES; vpnfwd picks from gluetun's
// server list in the volume (made here in gluetun's shape, its entries the
// testbed's two WireGuard servers and a third in another country), brings
// the tunnel and the port up on one of the matching servers, names it in
// status, and when that server dies moves to the other with the same key
// (Proton's key works on every server) and a port there.
func TestGluetunServerCountries(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "curl")
	v := NewVPN(t, n, true)
	v2 := v.AddServer(true)
	// One key for both, as Proton's.
	n.Must(v2.Server, "wg", "set", v2.wgIf, "peer", v.clientPub.String(), "allowed-ips", ClientIP+"/32")
	conf, _ := os.ReadFile(v.ClientConf)
	priv := regexp.MustCompile(`PrivateKey = (\S+)`).FindStringSubmatch(string(conf))[1]
	bin := BuildVPNFWD(t, t.TempDir())
	startEcho(t, n, v.Cli, ":7777")

	dir := t.TempDir()
	list := filepath.Join(dir, "servers.json")
	os.WriteFile(list, []byte(fmt.Sprintf(`{"version":1,"protonvpn":{"version":4,"timestamp":1,"servers":[
 {"vpn":"wireguard","country":"Netherlands","city":"Amsterdam","server_name":"NL#1","hostname":"nl-01.protonvpn.net","wgpubkey":"%s","ips":["%s"],"port_forward":true},
 {"vpn":"wireguard","country":"Switzerland","city":"Zurich","server_name":"CH#2","hostname":"ch-02.protonvpn.net","wgpubkey":"%s","ips":["192.0.2.77"],"port_forward":true},
 {"vpn":"wireguard","country":"Netherlands","city":"Rotterdam","server_name":"NL#3","hostname":"nl-03.protonvpn.net","wgpubkey":"%s","ips":["%s"],"port_forward":true}
]}}`, v.ServerPub, UnderVPN, v.ServerPub, v2.ServerPub, UnderVPN2)), 0o644)
	env := []string{
		"VPN_SERVICE_PROVIDER=protonvpn", "VPN_TYPE=wireguard", "WIREGUARD_PRIVATE_KEY=" + priv, "WIREGUARD_ADDRESSES=" + ClientIP + "/32",
		"SERVER_COUNTRIES=Netherlands", "VPN_PORT_FORWARDING=on", "VPN_PORT_FORWARDING_LISTENING_PORTS=7777",
		"STORAGE_FILEPATH=" + list, "VPN_PORT_FORWARDING_STATUS_FILE=" + filepath.Join(dir, "forwarded_port"),
		"VPNFWD_DNS_RESOLV_CONF=false", "VPNFWD_DNS_LISTEN=127.0.0.1:5353", "VPNFWD_STATE_DIR=" + filepath.Join(dir, "state"),
		"VPNFWD_WG_NAME=-", "VPNFWD_FAILOVER_AFTER=3s",
		// gluetun's control server needs a role for every route; the
		// test reads status on the pod's own API as a sidecar would.
		`HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE={"auth":"none"}`,
	}
	up := n.Start(v.Cli, append(append([]string{"env"}, env...), bin, "up")...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vpnfwd log:\n%s", up.Out)
		}
	})
	type status struct {
		Tunnel struct {
			Server    string
			Endpoint  string
			Failovers int
		}
		Port struct{ Port int }
	}
	read := func() (st status) {
		out, _ := n.Exec(v.Cli, "curl", "-s", "-m", "2", "http://127.0.0.1:8000/v1/status")
		json.Unmarshal([]byte(out), &st)
		return st
	}
	var st status
	waitForLong(t, 20*time.Second, func() bool { st = read(); return st.Port.Port > 0 }, up.Out.String)
	first, second, other := v, v2, "nl-03.protonvpn.net (Rotterdam)"
	if strings.HasPrefix(st.Tunnel.Endpoint, UnderVPN2+":") {
		first, second, other = v2, v, "nl-01.protonvpn.net (Amsterdam)"
	}
	if !strings.HasPrefix(st.Tunnel.Server, "nl-0") || !strings.Contains(up.Out.String(), "2 of 3 WireGuard servers match SERVER_COUNTRIES=Netherlands PORT_FORWARD_ONLY=on") {
		t.Errorf("status server %q; log:\n%s", st.Tunnel.Server, up.Out)
	}
	reach := func(public string, port int) error {
		return n.InNS(v.Inet, func() error { return echoOnce(public+":"+strconv.Itoa(port), "probe") })
	}
	waitForLong(t, 10*time.Second, func() bool { return reach(first.Public, st.Port.Port) == nil }, up.Out.String)

	// The server in use dies for good: the next matching server, the
	// same key, a port there.
	first.KillServer()
	killed := time.Now()
	waitForLong(t, 30*time.Second, func() bool {
		st = read()
		return st.Tunnel.Failovers >= 1 && st.Port.Port > 0 && reach(second.Public, st.Port.Port) == nil
	}, up.Out.String)
	t.Logf("moved to %s, port %d reachable %.1f s after the kill", st.Tunnel.Server, st.Port.Port, time.Since(killed).Seconds())
	if st.Tunnel.Server != other {
		t.Errorf("status names %q after the move, want %q", st.Tunnel.Server, other)
	}
}
