package rootnet

import (
	"encoding/json"
	"net/netip"
	"os/exec"

	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/internal/testnet"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// The test binary doubles as helper programs run inside namespaces:
// VPNFWD_HELPER=echo ADDR serves TCP and UDP echo; VPNFWD_HELPER=load
// opens many TCP connections and UDP peers to ADDR and holds them until its
// standard input closes; VPNFWD_HELPER=seed ADDR writes to every TCP
// connection as fast as it takes it, VPNFWD_HELPER=leech reads from ADDR
// on N connections at RATE bytes/s each.
func TestMain(m *testing.M) {
	switch os.Getenv("VPNFWD_HELPER") {
	case "echo":
		echoHelper(os.Getenv("VPNFWD_ADDR"))
		return
	case "pia":
		piaHelper()
		return
	case "whatsmyip":
		http.ListenAndServe(os.Getenv("VPNFWD_ADDR"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprintln(w, host)
		}))
		return
	case "portcheck":
		portCheckHelper(os.Getenv("VPNFWD_ADDR"), os.Getenv("VPNFWD_TARGET"))
		return
	case "load":
		n, _ := strconv.Atoi(os.Getenv("VPNFWD_N"))
		loadHelper(os.Getenv("VPNFWD_ADDR"), n)
		return
	case "seed":
		seedHelper(os.Getenv("VPNFWD_ADDR"))
		return
	case "leech":
		n, _ := strconv.Atoi(os.Getenv("VPNFWD_N"))
		rate, _ := strconv.Atoi(os.Getenv("VPNFWD_RATE"))
		leechHelper(os.Getenv("VPNFWD_ADDR"), n, rate)
		return
	case "hold": // listeners_test.go
		n, _ := strconv.Atoi(os.Getenv("VPNFWD_N"))
		holdHelper(os.Getenv("VPNFWD_ADDR"), n)
		return
	case "slow":
		n, _ := strconv.Atoi(os.Getenv("VPNFWD_N"))
		slowHelper(strings.Split(os.Getenv("VPNFWD_SOURCES"), ","), strings.Split(os.Getenv("VPNFWD_TARGETS"), ","), n)
		return
	}
	os.Exit(m.Run())
}

func echoHelper(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() { io.Copy(c, c); c.Close() }()
	}
}

// loadHelper prints "ok N M" once N TCP connections and M UDP peers have
// each had one echo, then waits for stdin to close.
func loadHelper(addr string, n int) {
	var mu sync.Mutex
	var conns []net.Conn
	var tcpOK, udpOK int
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	for i := 0; i < n; i++ {
		wg.Add(2)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			c.Write([]byte("x"))
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				c.Close()
				return
			}
			mu.Lock()
			conns = append(conns, c)
			tcpOK++
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", addr)
			if err != nil {
				return
			}
			for try := 0; try < 5; try++ {
				c.Write([]byte("u"))
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(make([]byte, 8)); err == nil {
					mu.Lock()
					conns = append(conns, c)
					udpOK++
					mu.Unlock()
					return
				}
			}
			c.Close()
		}()
	}
	wg.Wait()
	fmt.Printf("ok %d %d\n", tcpOK, udpOK)
	bufio.NewReader(os.Stdin).ReadString('\n')
}

// seedHelper is a seeding torrent client's side of its peers: it writes
// to every connection it accepts as fast as the connection takes it.
func seedHelper(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("ready")
	piece := make([]byte, 16<<10)
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			for {
				if _, err := c.Write(piece); err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}

// leechHelper is n peers downloading from addr at rate bytes/s each: it
// prints "ok N" once n connections have had their first bytes, then
// reads on until stdin closes, printing "read B" (all connections so
// far) for every line on stdin.
func leechHelper(addr string, n, rate int) {
	var got, total atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			started := sync.OnceFunc(wg.Done) // first bytes, or given up
			defer started()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 4<<10)
			start := time.Now()
			var read int64
			for {
				select {
				case <-done:
					return
				default:
				}
				// Keep to rate: wait until read is due.
				if ahead := time.Duration(read)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				k, err := c.Read(buf)
				read += int64(k)
				total.Add(int64(k))
				if read == int64(k) && k > 0 {
					got.Add(1)
					started()
				}
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("ok %d\n", got.Load())
	in := bufio.NewReader(os.Stdin)
	for {
		if _, err := in.ReadString('\n'); err != nil {
			break
		}
		fmt.Printf("read %d\n", total.Load())
	}
	close(done)
}

// portCheckHelper serves GET /PORT: "1" if TARGET:PORT accepts a TCP
// connection, else "0" (like Transmission's port checker).
func portCheckHelper(addr, target string) {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		port := strings.Trim(r.URL.Path, "/")
		c, err := net.DialTimeout("tcp", net.JoinHostPort(target, port), 2*time.Second)
		if err != nil {
			fmt.Fprint(w, "0")
			return
		}
		c.Close()
		fmt.Fprint(w, "1")
	})
	fmt.Println("ready")
	http.ListenAndServe(addr, nil)
}

// piaHelper runs the fake PIA inside the VPN server's namespace: the API
// on VPNFWD_API (TLS for that IP), addKey on VPNFWD_WGIP:1337, and
// getSignature/bindPort on the gateway's tunnel address. Keys become peers
// of the kernel WireGuard interface VPNFWD_WGIF; bound ports get a DNAT.
func piaHelper() {
	f, err := testnet.NewFakePIA(os.Getenv("VPNFWD_WGIP"))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	wgIf := os.Getenv("VPNFWD_WGIF")
	f.ServerKey, _ = tunnel.ParseKey(os.Getenv("VPNFWD_SERVERKEY"))
	f.Endpoint = netip.MustParseAddrPort(os.Getenv("VPNFWD_ENDPOINT"))
	f.VIP = netip.MustParseAddr(GatewayIP)
	if ttl, err := time.ParseDuration(os.Getenv("VPNFWD_TTL")); err == nil {
		f.PayloadTTL = ttl
	}
	f.AddPeer = func(pub tunnel.Key, ip netip.Addr) error {
		return exec.Command("wg", "set", wgIf, "peer", pub.String(), "allowed-ips", ip.String()+"/32").Run()
	}
	f.Forward = func(port uint16, client netip.Addr) error {
		for _, proto := range []string{"tcp", "udp"} {
			out, err := exec.Command("nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub", proto, "dport", fmt.Sprint(port),
				"dnat", "ip", "to", fmt.Sprintf("%s:%d", client, port)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
		}
		return nil
	}
	api, err := net.Listen("tcp", os.Getenv("VPNFWD_API"))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	host, _, _ := net.SplitHostPort(os.Getenv("VPNFWD_API"))
	f.ServeAPI(api, host)
	key, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("VPNFWD_WGIP"), "1337"))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	f.ServeKeyAPI(key)
	pf, err := net.Listen("tcp", net.JoinHostPort(GatewayIP, "19999"))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	f.ServePortForward(pf)
	os.WriteFile(os.Getenv("VPNFWD_CA_OUT"), f.CAPEM(), 0o644)
	os.WriteFile(os.Getenv("VPNFWD_KEY_OUT"), f.SigningKeyPEM(), 0o644)
	fmt.Printf("ready %s %s\n", f.Username, f.Password)
	select {}
}

// startWhatsMyIP serves the caller's address over HTTP on :8080 in ns.
func startWhatsMyIP(t *testing.T, n *Net, ns string) {
	self, _ := os.Executable()
	n.Start(ns, "env", "VPNFWD_HELPER=whatsmyip", "VPNFWD_ADDR=:8080", self)
	waitFor(t, func() bool {
		_, err := n.Exec(ns, "socat", "-T1", "/dev/null", "TCP:127.0.0.1:8080")
		return err == nil
	})
}

// startQBittorrent starts Debian's qbittorrent-nox in ns with a fresh
// profile (Web UI on 127.0.0.1:8080, admin/adminadmin) and waits for its
// Web UI; it returns the profile directory.
func startQBittorrent(t *testing.T, n *Net, ns string) string {
	t.Helper()
	profile := t.TempDir()
	conf := filepath.Join(profile, "qBittorrent", "config", "qBittorrent.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	os.WriteFile(conf, []byte("[LegalNotice]\nAccepted=true\n[Preferences]\nConnection\\PortRangeMin=6881\nWebUI\\Port=8080\n"), 0o644)
	n.Start(ns, "qbittorrent-nox", "--profile="+profile)
	waitFor(t, func() bool {
		_, err := n.Exec(ns, "socat", "-T1", "/dev/null", "TCP:127.0.0.1:8080")
		return err == nil
	})
	return profile
}

// startResolver starts Debian's dnsmasq in the VPN server's namespace,
// answering vpn.test with the internet host's address on each of addrs.
func startResolver(n *Net, v *VPN, addrs ...string) {
	args := []string{"dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces", "--address=/vpn.test/" + InetAddr, "--pid-file="}
	for _, a := range addrs {
		args = append(args, "--listen-address="+a)
	}
	n.Start(v.Server, args...)
}

// waitForSyncedPort waits until vpnfwd in ns holds a port and its one
// publisher (a torrent client) has taken it, and returns the port.
func waitForSyncedPort(t *testing.T, n *Net, ns, bin string) int {
	t.Helper()
	var st struct {
		Port    struct{ Port int }
		Publish []struct {
			OK    bool
			Ports []int
		}
	}
	waitFor(t, func() bool {
		out, err := n.Exec(ns, bin, "status", "--json")
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			return false
		}
		return st.Port.Port != 0 && len(st.Publish) == 1 && st.Publish[0].OK && st.Publish[0].Ports[0] == st.Port.Port
	})
	return st.Port.Port
}
