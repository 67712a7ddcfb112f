package rootnet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

// Addresses of the standard test topology:
//
//	inet (100.64.7.2) --pub-- vpn (100.64.7.1; wg0 10.2.0.1/24) --under-- cli (100.65.7.2)
const (
	InetAddr   = "100.64.7.2"
	PublicAddr = "100.64.7.1" // the VPN server's "public" address
	UnderVPN   = "100.65.7.1" // the server's address on the client's underlay
	UnderCli   = "100.65.7.2"
	GatewayIP  = "10.2.0.1"
	ClientIP   = "10.2.0.2"
	WGPort     = 51820
	// ReportedIP is what miniupnpd answers as its external address. It is
	// never a packet destination: miniupnpd refuses reserved addresses.
	ReportedIP = "11.22.33.44"
)

// VPN is a WireGuard server (Debian's wireguard-go, kernel TUN) with
// masquerading to the inet namespace, optionally with miniupnpd answering
// NAT-PMP on the tunnel gateway.
type VPN struct {
	Net               *Net
	Inet, Server, Cli string
	ClientConf        string // path of the client's wg-quick file
	ServerPub         tunnel.Key
	Dir               string
	// Public is the server's public address (what the internet
	// connects to), Under its address on the client's underlay, CliIf
	// the client's interface to it.
	Public, Under, CliIf string

	t          testing.TB
	wgIf       string
	keyFile    string
	clientPub  tunnel.Key
	server     *Proc
	gateway    *Proc
	upnpConf   string
	gwExtra    []string
	denied     []int // public ports miniupnpd refuses (DenyPorts)
	blackedOut bool
}

// NewVPN builds the topology. natpmp starts miniupnpd (NAT-PMP only).
func NewVPN(t testing.TB, n *Net, natpmp bool) *VPN {
	t.Helper()
	v := &VPN{Net: n, Dir: t.TempDir(), Public: PublicAddr, Under: UnderVPN, CliIf: "eth0"}
	v.Inet, v.Server, v.Cli = n.NS("inet"), n.NS("vpn"), n.NS("cli")
	n.Link(v.Server, "pub", PublicAddr+"/24", v.Inet, "eth0", InetAddr+"/24")
	n.Link(v.Server, "under", UnderVPN+"/24", v.Cli, "eth0", UnderCli+"/24")
	n.Must(v.Inet, "ip", "route", "add", "default", "via", PublicAddr)
	// Like a real host, the client has a default route (outside the
	// tunnel): a leak would get out.
	n.Must(v.Cli, "ip", "route", "add", "default", "via", UnderVPN)
	v.build(t, natpmp, "wg"+n.prefix)
	return v
}

// Second-server addresses: its public side (to inet's eth1) and its
// underlay to the client (the client's eth1).
const (
	Public2   = "100.64.8.1"
	Inet2     = "100.64.8.2"
	UnderVPN2 = "100.67.7.1"
	UnderCli2 = "100.67.7.2"
)

// AddServer adds a second WireGuard server of the same provider, as a
// provider's second wg-quick file names: its own host ("vpn2"), public
// address (Public2) and key, the same tunnel addressing (gateway 10.2.0.1,
// client 10.2.0.2, as Proton's servers all have), its own miniupnpd if
// natpmp, and its own client key; ClientConf is its wg-quick file.
func (v *VPN) AddServer(natpmp bool) *VPN {
	t, n := v.t, v.Net
	t.Helper()
	s := &VPN{Net: n, Dir: t.TempDir(), Inet: v.Inet, Cli: v.Cli, Public: Public2, Under: UnderVPN2, CliIf: "eth1"}
	s.Server = n.NS("vpn2")
	n.Link(s.Server, "pub", Public2+"/24", v.Inet, "eth1", Inet2+"/24")
	n.Link(s.Server, "under", UnderVPN2+"/24", v.Cli, "eth1", UnderCli2+"/24")
	s.build(t, natpmp, "wh"+n.prefix)
	return s
}

// build starts the server's WireGuard, NAT and gateway and writes the
// client's wg-quick file.
func (v *VPN) build(t testing.TB, natpmp bool, wgIf string) {
	n := v.Net
	n.Must(v.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	sk, _ := tunnel.NewPrivateKey()
	ck, _ := tunnel.NewPrivateKey()
	v.t, v.ServerPub, v.clientPub = t, sk.Public(), ck.Public()
	v.wgIf = wgIf
	v.keyFile = filepath.Join(v.Dir, "server.key")
	os.WriteFile(v.keyFile, []byte(sk.Base64()+"\n"), 0o600)
	v.StartServer()

	rules := `
table inet filter {
	chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
	chain miniupnpd { }
	chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_miniupnpd
		oifname "pub" ip saddr 10.2.0.0/24 masquerade
	}
	chain prerouting_miniupnpd { }
	chain postrouting_miniupnpd { }
}
`
	if _, err := n.ExecInput(v.Server, rules, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if natpmp {
		v.upnpConf = filepath.Join(v.Dir, "miniupnpd.conf")
		v.GatewayConf()
		v.StartGateway()
	}
	v.ClientConf = filepath.Join(v.Dir, "client.conf")
	os.WriteFile(v.ClientConf, []byte(fmt.Sprintf(`# provider header
[Interface]
PrivateKey = %s
Address = %s/32
DNS = %s

[Peer]
PublicKey = %s
AllowedIPs = 0.0.0.0/0
Endpoint = %s:%d
PersistentKeepalive = 25
`, ck.Base64(), ClientIP, GatewayIP, sk.Public(), v.Under, WGPort)), 0o600)
}

// ServerBinary is the VPN server's wireguard-go: Debian's, or the one
// VPNFWD_TEST_WG_SERVER names (for instance a current upstream build, to
// see the clients with a server that is not the testbed's ceiling).
func ServerBinary() string {
	if b := os.Getenv("VPNFWD_TEST_WG_SERVER"); b != "" {
		return b
	}
	return "wireguard-go"
}

// Forward makes the server forward port (each protocol, default TCP and
// UDP) from its public side to the same port of the tunnel address to, as
// a provider's forwarded port.
func (v *VPN) Forward(port, to string, protos ...string) {
	v.t.Helper()
	if len(protos) == 0 {
		protos = []string{"tcp", "udp"}
	}
	for _, proto := range protos {
		v.Net.Must(v.Server, "nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub",
			proto, "dport", port, "dnat", "ip", "to", to+":"+port)
	}
}

// StartServer starts the WireGuard server (wireguard-go on a kernel TUN)
// with the client as its one peer; it knows the client's endpoint only
// from the client's next handshake, as a real server after a restart.
func (v *VPN) StartServer() {
	v.t.Helper()
	n := v.Net
	v.server = n.Start(v.Server, "env", "WG_PROCESS_FOREGROUND=1", ServerBinary(), v.wgIf)
	waitFor(v.t, func() bool { _, err := n.Exec(v.Server, "ip", "link", "show", v.wgIf); return err == nil })
	n.Must(v.Server, "wg", "set", v.wgIf, "private-key", v.keyFile, "listen-port", fmt.Sprint(WGPort),
		"peer", v.clientPub.String(), "allowed-ips", ClientIP+"/32")
	n.Must(v.Server, "ip", "addr", "add", GatewayIP+"/24", "dev", v.wgIf)
	n.Must(v.Server, "ip", "link", "set", v.wgIf, "up")
}

// KillServer kills the WireGuard server for good (SIGKILL) and waits
// until its interface is gone.
func (v *VPN) KillServer() {
	v.t.Helper()
	if _, err := v.server.Signal(syscall.SIGKILL, 5*time.Second); err != nil {
		v.t.Fatal(err)
	}
	waitFor(v.t, func() bool { _, err := v.Net.Exec(v.Server, "ip", "link", "show", v.wgIf); return err != nil })
}

// StopServer stops the WireGuard server (SIGTERM) and waits until its
// interface is gone.
func (v *VPN) StopServer() {
	v.t.Helper()
	if _, err := v.server.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		v.t.Fatal(err)
	}
	waitFor(v.t, func() bool { _, err := v.Net.Exec(v.Server, "ip", "link", "show", v.wgIf); return err != nil })
}

// GatewayConf writes miniupnpd's configuration with extra lines (for
// instance "system_uptime=yes", as Debian's shipped file has it: the
// NAT-PMP epoch is then the system's uptime, and a restart does not show
// in it). It takes effect at the gateway's next start.
func (v *VPN) GatewayConf(extra ...string) {
	v.gwExtra = extra
	var deny []string
	for _, p := range v.denied {
		deny = append(deny, fmt.Sprintf("deny %d 0.0.0.0/0 0-65535", p))
	}
	lines := append(deny, append([]string{
		"ext_ifname=pub",
		"ext_ip=" + ReportedIP,
		"listening_ip=" + v.wgIf,
		"enable_natpmp=yes",
		"enable_upnp=no",
		"secure_mode=yes",
		"min_lifetime=10",
		"max_lifetime=3600",
		"allow 1024-65535 10.2.0.0/24 1024-65535",
		"deny 0-65535 0.0.0.0/0 0-65535",
	}, extra...)...)
	os.WriteFile(v.upnpConf, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// DenyPorts restarts miniupnpd refusing these public ports (as a gateway
// whose port someone else now holds): a client asking for one of them
// is given another (miniupnpd's NAT-PMP tries the next ports).
func (v *VPN) DenyPorts(ports ...int) {
	v.t.Helper()
	v.denied = ports
	v.StopGateway()
	v.GatewayConf(v.gwExtra...)
	v.StartGateway()
}

// StartGateway starts miniupnpd answering NAT-PMP on the gateway address.
func (v *VPN) StartGateway() {
	v.t.Helper()
	n := v.Net
	v.gateway = n.Start(v.Server, "miniupnpd", "-d", "-f", v.upnpConf, "-P", filepath.Join(v.Dir, "miniupnpd.pid"))
	waitFor(v.t, func() bool {
		out, _ := n.Exec(v.Server, "ss", "-lun")
		return strings.Contains(out, GatewayIP+":5351")
	})
}

// StopGateway stops miniupnpd (SIGTERM: it removes its mappings, and its
// next start has a new epoch).
func (v *VPN) StopGateway() {
	v.t.Helper()
	if _, err := v.gateway.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		v.t.Fatal(err)
	}
}

// LoseMappings deletes every port mapping miniupnpd made, as a gateway
// that reboots loses them.
func (v *VPN) LoseMappings() {
	v.t.Helper()
	for _, c := range []string{"prerouting_miniupnpd", "postrouting_miniupnpd", "miniupnpd"} {
		v.Net.Must(v.Server, "nft", "flush", "chain", "inet", "filter", c)
	}
}

// Blackout drops every packet between the client and the server (both
// ways) while on, as a dead link would; the interfaces stay up.
func (v *VPN) Blackout(on bool) {
	v.t.Helper()
	if on == v.blackedOut {
		return
	}
	v.blackedOut = on
	// An ingress drop at each end of the underlay link.
	for _, end := range []struct{ ns, dev string }{{v.Server, "under"}, {v.Cli, v.CliIf}} {
		if !on {
			v.Net.Must(end.ns, "nft", "delete", "table", "netdev", "blackout")
			continue
		}
		rules := `table netdev blackout {
	chain in { type filter hook ingress device "` + end.dev + `" priority -500; policy drop; }
}
`
		if _, err := v.Net.ExecInput(end.ns, rules, "nft", "-f", "-"); err != nil {
			v.t.Fatal(err)
		}
	}
}

// waitForPort waits until `vpnfwd port` in ns prints the forwarded port.
func waitForPort(t testing.TB, n *Net, ns, bin string) int {
	t.Helper()
	var port int
	waitFor(t, func() bool {
		out, err := n.Exec(ns, bin, "port")
		if err == nil {
			port, _ = strconv.Atoi(strings.TrimSpace(out))
		}
		return port > 0
	})
	return port
}

func waitFor(t testing.TB, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the test network")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BuildVPNFWD compiles the vpnfwd command into dir.
func BuildVPNFWD(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "vpnfwd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/vpnfwd/vpnfwd/cmd/vpnfwd").CombinedOutput()
	if err != nil {
		t.Fatalf("building vpnfwd: %v\n%s", err, out)
	}
	return bin
}

// ExecUntil runs a command in ns up to three times until its output
// contains want (for checks that something does get through, on a loaded
// machine; UDP may also lose a datagram).
func (n *Net) ExecUntil(ns, input, want string, args ...string) (string, error) {
	var out string
	var err error
	for try := 0; try < 3; try++ {
		out, err = n.ExecInput(ns, input, args...)
		if err == nil && strings.Contains(out, want) {
			return out, nil
		}
	}
	if err == nil {
		err = fmt.Errorf("no %q in %q", want, out)
	}
	return out, err
}

// AddClient adds a client host "cli<i>" (i >= 2) with its own underlay link
// to the server (100.<64+i>.7.0/24) and its own peer (10.2.0.<i+1>) on the
// server; it returns the namespace, the client's tunnel address and a
// wg-quick file for it. No DNS line: the caller chooses.
func (v *VPN) AddClient(i int) (ns, ip, conf string) {
	v.t.Helper()
	n := v.Net
	ns = n.NS(fmt.Sprintf("cli%d", i))
	srv, cli := fmt.Sprintf("100.%d.7.1", 64+i), fmt.Sprintf("100.%d.7.2", 64+i)
	n.Link(v.Server, fmt.Sprintf("under%d", i), srv+"/24", ns, "eth0", cli+"/24")
	n.Must(ns, "ip", "route", "add", "default", "via", srv)
	ip = fmt.Sprintf("10.2.0.%d", i+1)
	ck, _ := tunnel.NewPrivateKey()
	n.Must(v.Server, "wg", "set", v.wgIf, "peer", ck.Public().String(), "allowed-ips", ip+"/32")
	conf = filepath.Join(v.Dir, fmt.Sprintf("client%d.conf", i))
	os.WriteFile(conf, []byte(fmt.Sprintf(`[Interface]
PrivateKey = %s
Address = %s/32

[Peer]
PublicKey = %s
AllowedIPs = 0.0.0.0/0
Endpoint = %s:%d
PersistentKeepalive = 25
`, ck.Base64(), ip, v.ServerPub, srv, WGPort)), 0o600)
	return ns, ip, conf
}
