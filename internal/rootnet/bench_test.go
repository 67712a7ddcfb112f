package rootnet

import (
	"encoding/json"
	"fmt"
	"io"
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

// TestWholePath is the whole-path benchmark (bench/whole-path.sh runs it;
// it skips unless VPNFWD_BENCH=1). On the namespace testbed it measures:
// start to port reachable; bulk TCP through the forwarded port in both
// directions, next to Debian's kernel-TUN wireguard-go client on the same
// server in the same run; and vpnfwd's resident memory with 1,000 bridged
// TCP connections and 1,000 UDP peers.
func TestWholePath(t *testing.T) {
	if os.Getenv("VPNFWD_BENCH") != "1" {
		t.Skip("set VPNFWD_BENCH=1 (bench/whole-path.sh)")
	}
	n := New(t, "wireguard-go", "wg", "nft", "iperf3", "socat")
	v := NewVPN(t, n, false)
	bin := BuildVPNFWD(t, t.TempDir())
	secs := os.Getenv("VPNFWD_BENCH_SECONDS")
	if secs == "" {
		secs = "5"
	}

	// A second client: Debian's wireguard-go with a kernel TUN, 10.2.0.3.
	cli2 := n.NS("cli2")
	n.Link(v.Server, "under2", "100.66.7.1/24", cli2, "eth0", "100.66.7.2/24")
	ck, _ := tunnel.NewPrivateKey()
	wgSrv := "wg" + n.prefix
	n.Must(v.Server, "wg", "set", wgSrv, "peer", ck.Public().String(), "allowed-ips", "10.2.0.3/32")
	n.Start(cli2, "env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "wgk")
	waitFor(t, func() bool { _, err := n.Exec(cli2, "ip", "link", "show", "wgk"); return err == nil })
	key := filepath.Join(v.Dir, "cli2.key")
	os.WriteFile(key, []byte(ck.Base64()), 0o600)
	n.Must(cli2, "wg", "set", "wgk", "private-key", key, "peer", v.ServerPub.String(),
		"endpoint", "100.66.7.1:51820", "allowed-ips", "0.0.0.0/0", "persistent-keepalive", "25")
	n.Must(cli2, "ip", "addr", "add", "10.2.0.3/32", "dev", "wgk")
	n.Must(cli2, "ip", "link", "set", "wgk", "up")
	n.Must(cli2, "ip", "route", "add", "default", "dev", "wgk") // the endpoint stays on-link via eth0

	// Static DNAT on the server: 5201 -> vpnfwd's client, 5202 -> the kernel client.
	n.Must(v.Server, "nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub", "tcp", "dport", "5201", "dnat", "ip", "to", ClientIP+":5201")
	n.Must(v.Server, "nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub", "tcp", "dport", "5202", "dnat", "ip", "to", "10.2.0.3:5202")
	n.Must(v.Server, "nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub", "udp", "dport", "5203", "dnat", "ip", "to", ClientIP+":5203")
	n.Must(v.Server, "nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub", "tcp", "dport", "5203", "dnat", "ip", "to", ClientIP+":5203")

	n.Start(v.Cli, "iperf3", "-s", "-B", "127.0.0.1", "-p", "5201")
	n.Start(cli2, "iperf3", "-s", "-B", "10.2.0.3", "-p", "5202")

	self, _ := os.Executable()
	echo := n.Start(v.Cli, "env", "VPNFWD_HELPER=echo", "VPNFWD_ADDR=127.0.0.1:5203", self)
	waitFor(t, func() bool { return strings.Contains(echo.Out.String(), "ready") })

	start := time.Now()
	up := n.Start(v.Cli, bin, "up", "--wg-config", v.ClientConf, "--provider", "static", "--port", "5201,5203",
		"--forward", "127.0.0.1", "--log-level", "warn",
		// The load comes from one address here; in life, from 1,000.
		"--max-connections-per-source", "2000", "--max-udp-flows-per-source", "2000")
	waitFor(t, func() bool {
		out, _ := n.ExecInput(v.Inet, "ping\n", "socat", "-T1", "-", "TCP:"+PublicAddr+":5203")
		return strings.Contains(out, "ping")
	})
	fmt.Printf("start to port reachable from the internet namespace: %d ms (polling with socat)\n", time.Since(start).Milliseconds())
	idle := rss(t, up.Cmd.Process.Pid)
	// Memory with 1,000 TCP connections and 1,000 UDP peers held open.
	a := append([]string{"ip", "netns", "exec", v.Inet}, "env", "VPNFWD_HELPER=load", "VPNFWD_ADDR="+PublicAddr+":5203", "VPNFWD_N=1000", self)
	load := exec.Command(a[0], a[1:]...)
	stdin, _ := load.StdinPipe()
	loadOut := &SyncBuffer{}
	load.Stdout, load.Stderr = loadOut, loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(loadOut.String(), "ok ") {
		if time.Now().After(deadline) {
			t.Fatalf("load generator: %s", loadOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
	line := strings.Fields(loadOut.String())
	held := rss(t, up.Cmd.Process.Pid)
	st := n.Must(v.Cli, bin, "status")
	fmt.Printf("memory: vpnfwd RSS %.1f MB at start, %.1f MB with %s TCP connections and %s UDP peers held (peak %.1f MB)\n",
		idle.cur, held.cur, line[1], line[2], held.peak)
	for _, l := range strings.Split(st, "\n") {
		if strings.HasPrefix(l, "forward") {
			fmt.Println("  " + l)
		}
	}
	io.WriteString(stdin, "\n")
	stdin.Close()
	load.Wait()
	iperf := func(port string, reverse bool) float64 {
		args := []string{"iperf3", "-c", PublicAddr, "-p", port, "-t", secs, "-J"}
		if reverse {
			args = append(args, "-R")
		}
		out := n.Must(v.Inet, args...)
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("iperf3: %v\n%s", err, out)
		}
		return r.End.SumReceived.BitsPerSecond / 1e6
	}
	// Interleave the runs so machine noise hits both alike.
	var vDown, vUp, kDown, kUp float64
	rounds := 2
	for i := 0; i < rounds; i++ {
		vDown += iperf("5201", false) / float64(rounds)
		kDown += iperf("5202", false) / float64(rounds)
		vUp += iperf("5201", true) / float64(rounds)
		kUp += iperf("5202", true) / float64(rounds)
	}
	fmt.Printf("bulk TCP, Mbit/s (mean of %d x %ss)        vpnfwd   kernel-TUN wireguard-go   ratio\n", rounds, secs)
	fmt.Printf("  internet -> service (download)         %7.0f   %7.0f                   %.2f\n", vDown, kDown, vDown/kDown)
	fmt.Printf("  service -> internet (upload, seeding)  %7.0f   %7.0f                   %.2f\n", vUp, kUp, vUp/kUp)

	after := rss(t, up.Cmd.Process.Pid)
	fmt.Printf("memory after the bulk runs: RSS %.1f MB (peak %.1f MB)\n", after.cur, after.peak)
	up.Signal(syscall.SIGTERM, 5*time.Second)
}

type mem struct{ cur, peak float64 }

func rss(t *testing.T, pid int) mem {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var m mem
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			m.cur = kb / 1024
		case "VmHWM:":
			m.peak = kb / 1024
		}
	}
	return m
}
