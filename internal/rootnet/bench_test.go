package rootnet

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

// TestWholePath is the whole-path benchmark (bench/whole-path.sh runs it;
// it skips unless VPNFWD_BENCH=1). On the namespace testbed (Debian's
// wireguard-go as the VPN server) it measures: start to port reachable
// from the internet namespace in each mode (netstack, --tun, exec); bulk
// TCP through the forwarded port in both directions for vpnfwd (netstack
// and --tun) next to Debian's kernel-TUN wireguard-go client on the same
// server, interleaved in one run, with each client's own CPU time per GB,
// how busy the server and the whole machine were and what share of the
// datagrams the server's socket dropped (so that a ceiling of the testbed
// shows as one); and vpnfwd's resident memory with 1,000 bridged TCP
// connections and 1,000 UDP peers, and every client's after the bulk runs.
// VPNFWD_BENCH_BIN measures another vpnfwd binary and VPNFWD_BENCH_BIN2
// adds one (an older build, for a before/after in one setting);
// VPNFWD_BENCH_ROUNDS, _SECONDS and _STREAMS (TCP connections per run) set
// the runs; VPNFWD_BENCH_PERF=DIR records each vpnfwd's CPU profile with
// perf during the first round; VPNFWD_BENCH_SETTLE=S follows the RSS for
// S seconds after the runs; VPNFWD_TEST_WG_SERVER=PATH runs another
// wireguard-go as the VPN server (Debian's caps every client).
func TestWholePath(t *testing.T) {
	if os.Getenv("VPNFWD_BENCH") != "1" {
		t.Skip("set VPNFWD_BENCH=1 (bench/whole-path.sh)")
	}
	// The knobs are read before the testbed is built: a bad value fails
	// at once. STREAMS: TCP connections per run (iperf3 -P), as a seeding
	// client serves several peers at once.
	dur := benchKnob(t, "VPNFWD_BENCH_SECONDS", 5)
	secs := strconv.Itoa(dur)
	rounds := benchKnob(t, "VPNFWD_BENCH_ROUNDS", 3)
	streams := benchKnob(t, "VPNFWD_BENCH_STREAMS", 1)
	settle := benchKnob(t, "VPNFWD_BENCH_SETTLE", 0)
	n := New(t, "wireguard-go", "wg", "nft", "iperf3", "socat")
	v := NewVPN(t, n, false)
	bin := os.Getenv("VPNFWD_BENCH_BIN")
	if bin == "" {
		bin = BuildVPNFWD(t, t.TempDir())
	}

	// A second client: Debian's wireguard-go with a kernel TUN, 10.2.0.3.
	cli2 := n.NS("cli2")
	n.Link(v.Server, "under2", "100.66.7.1/24", cli2, "eth0", "100.66.7.2/24")
	ck, _ := tunnel.NewPrivateKey()
	wgSrv := "wg" + n.prefix
	n.Must(v.Server, "wg", "set", wgSrv, "peer", ck.Public().String(), "allowed-ips", "10.2.0.3/32")
	kernelWG := n.Start(cli2, "env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "wgk")
	waitFor(t, func() bool { _, err := n.Exec(cli2, "ip", "link", "show", "wgk"); return err == nil })
	key := filepath.Join(v.Dir, "cli2.key")
	os.WriteFile(key, []byte(ck.Base64()), 0o600)
	n.Must(cli2, "wg", "set", "wgk", "private-key", key, "peer", v.ServerPub.String(),
		"endpoint", "100.66.7.1:51820", "allowed-ips", "0.0.0.0/0", "persistent-keepalive", "25")
	n.Must(cli2, "ip", "addr", "add", "10.2.0.3/32", "dev", "wgk")
	n.Must(cli2, "ip", "link", "set", "wgk", "up")
	n.Must(cli2, "ip", "route", "add", "default", "dev", "wgk") // the endpoint stays on-link via eth0
	// vpnfwd --tun (10.2.0.4) and vpnfwd exec (10.2.0.5) on hosts of their own.
	cli3, ip3, conf3 := v.AddClient(3)
	cli4, ip4, conf4 := v.AddClient(4)

	// Static DNAT on the server, as a provider's forwarded port:
	// 5201, 5203 -> vpnfwd (netstack); 5202 -> the kernel client;
	// 5204, 5205 -> vpnfwd --tun; 5206 -> vpnfwd exec.
	for _, r := range []struct{ proto, port, to string }{
		{"tcp", "5201", ClientIP}, {"tcp", "5203", ClientIP}, {"udp", "5203", ClientIP},
		{"tcp", "5202", "10.2.0.3"}, {"tcp", "5204", ip3}, {"tcp", "5205", ip3}, {"tcp", "5206", ip4},
	} {
		n.Must(v.Server, "nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub",
			r.proto, "dport", r.port, "dnat", "ip", "to", r.to+":"+r.port)
	}

	n.Start(v.Cli, "iperf3", "-s", "-B", "127.0.0.1", "-p", "5201")
	n.Start(cli2, "iperf3", "-s", "-B", "10.2.0.3", "-p", "5202")
	self, _ := os.Executable()
	echo := n.Start(v.Cli, "env", "VPNFWD_HELPER=echo", "VPNFWD_ADDR=127.0.0.1:5203", self)
	waitFor(t, func() bool { return strings.Contains(echo.Out.String(), "ready") })

	// Start to reachable: from starting vpnfwd to the first echo through
	// the forwarded port from the internet namespace (polling with socat).
	reachable := func(port string) bool {
		out, _ := n.ExecInput(v.Inet, "ping\n", "socat", "-T1", "-", "TCP:"+PublicAddr+":"+port)
		return strings.Contains(out, "ping")
	}
	start := time.Now()
	upArgs := []string{bin, "up", "--wg-config", v.ClientConf, "--provider", "static", "--port", "5201,5203",
		"--forward", "127.0.0.1", "--log-level", "warn",
		// The load comes from one address here; in life, from 1,000.
		"--max-connections-per-source", "2000", "--max-udp-flows-per-source", "2000"}
	up := n.Start(v.Cli, upArgs...)
	waitFor(t, func() bool { return reachable("5203") })
	fmt.Printf("start to port reachable from the internet (socat polling):\n")
	fmt.Printf("  netstack (default)   %4d ms\n", time.Since(start).Milliseconds())

	n.Start(cli3, "socat", "TCP-LISTEN:5205,fork,reuseaddr", "EXEC:cat")
	n.Start(cli3, "iperf3", "-s", "-p", "5204") // no -B: the address comes with the TUN
	start = time.Now()
	tunUp := n.Start(cli3, bin, "up", "--tun", "wgt", "--wg-config", conf3, "--provider", "static",
		"--port", "5204,5205", "--dns-listen", "off", "--log-level", "warn")
	waitFor(t, func() bool { return reachable("5205") })
	fmt.Printf("  --tun                %4d ms\n", time.Since(start).Milliseconds())

	start = time.Now()
	execUp := n.Start(cli4, bin, "exec", "--wg-config", conf4, "--provider", "static", "--port", "5206",
		"--dns-listen", "off", "--log-level", "warn", "--", "socat", "TCP-LISTEN:5206,fork,reuseaddr", "EXEC:cat")
	waitFor(t, func() bool { return reachable("5206") })
	fmt.Printf("  exec                 %4d ms (including CMD's start)\n", time.Since(start).Milliseconds())
	execUp.Signal(syscall.SIGTERM, 5*time.Second)

	// VPNFWD_BENCH_BIN2: a second vpnfwd build in netstack mode, on a host
	// of its own (10.2.0.6, port 5207), measured in the same rounds.
	var other *Proc
	if bin2 := os.Getenv("VPNFWD_BENCH_BIN2"); bin2 != "" {
		cli5, ip5, conf5 := v.AddClient(5)
		n.Must(v.Server, "nft", "add", "rule", "inet", "filter", "prerouting", "iifname", "pub",
			"tcp", "dport", "5207", "dnat", "ip", "to", ip5+":5207")
		n.Start(cli5, "iperf3", "-s", "-B", "127.0.0.1", "-p", "5207")
		other = n.Start(cli5, bin2, "up", "--wg-config", conf5, "--provider", "static", "--port", "5207",
			"--forward", "127.0.0.1", "--dns-listen", "off", "--log-level", "warn")
		waitFor(t, func() bool {
			_, err := n.Exec(v.Inet, "socat", "-T1", "/dev/null", "TCP:"+PublicAddr+":5207")
			return err == nil
		})
	}

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

	// The bulk runs get a fresh vpnfwd: the load's aftermath (its heap
	// near the soft memory limit) would weigh on the first client only.
	up.Signal(syscall.SIGTERM, 5*time.Second)
	up = n.Start(v.Cli, upArgs...)
	waitFor(t, func() bool { return reachable("5203") })

	// One iperf3 run (dir 0: download, 1: upload -R): Mbit/s, the client's
	// CPU seconds per GB moved, and how busy the VPN server (a ceiling for
	// every client alike) and the whole machine were meanwhile, in CPUs.
	serverPid := v.server.Cmd.Process.Pid
	type result struct{ mbps, cpuPerGB, serverCPUs, machineCPUs, serverDrops float64 }
	iperf := func(port string, pid, dir int) result {
		args := []string{"iperf3", "-c", PublicAddr, "-p", port, "-t", secs, "-P", strconv.Itoa(streams), "-J"}
		if dir == 1 {
			args = append(args, "-R")
		}
		cpu0, srv0, busy0, wall0 := cpuSeconds(t, pid), cpuSeconds(t, serverPid), machineBusy(t), time.Now()
		in0, drop0 := udpCounters(t, n, v.Server)
		// iperf3 runs secs, then reports: Exec's 10-s limit would kill
		// a longer run.
		out, err := n.ExecTimeout(v.Inet, time.Duration(dur+10)*time.Second, args...)
		if err != nil {
			t.Fatal(err)
		}
		wall := time.Since(wall0).Seconds()
		cpu := cpuSeconds(t, pid) - cpu0
		in1, drop1 := udpCounters(t, n, v.Server)
		var r struct {
			End struct {
				SumReceived struct {
					Bytes         float64 `json:"bytes"`
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.End.SumReceived.Bytes == 0 {
			t.Fatalf("iperf3 to port %s: %v\n%s", port, err, out)
		}
		return result{
			mbps:        r.End.SumReceived.BitsPerSecond / 1e6,
			cpuPerGB:    cpu / (r.End.SumReceived.Bytes / 1e9),
			serverCPUs:  (cpuSeconds(t, serverPid) - srv0) / wall,
			machineCPUs: (machineBusy(t) - busy0) / wall,
			serverDrops: (drop1 - drop0) / max(1, in1-in0+drop1-drop0),
		}
	}
	type benchClient struct {
		name, port string
		pid        int
	}
	clients := []benchClient{
		{"kernel-TUN wireguard-go (reference)", "5202", kernelWG.Cmd.Process.Pid},
		{"vpnfwd (netstack, --forward)", "5201", up.Cmd.Process.Pid},
		{"vpnfwd --tun", "5204", tunUp.Cmd.Process.Pid},
	}
	if other != nil {
		clients = append(clients, benchClient{"vpnfwd (netstack, VPNFWD_BENCH_BIN2)", "5207", other.Cmd.Process.Pid})
	}
	// [client][direction] -> per-round figures; the runs are interleaved
	// so that machine noise hits all clients alike.
	type figures struct{ rate, cpu, server, machine, drops []float64 }
	fig := make([][2]figures, len(clients))
	dirName := [2]string{"down", "up"}
	for i := 0; i < rounds; i++ {
		for dir := 0; dir < 2; dir++ {
			for c, cl := range clients {
				var perf *exec.Cmd
				if pdir := os.Getenv("VPNFWD_BENCH_PERF"); pdir != "" && i == 0 && c > 0 {
					// perf record of this client's process during this run.
					perf = exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(cl.pid),
						"-o", filepath.Join(pdir, fmt.Sprintf("perf-%s-%s.data", cl.port, dirName[dir])), "--", "sleep", secs)
					perf.Start()
				}
				r := iperf(cl.port, cl.pid, dir)
				if perf != nil {
					perf.Wait()
				}
				f := &fig[c][dir]
				f.rate, f.cpu = append(f.rate, r.mbps), append(f.cpu, r.cpuPerGB)
				f.server, f.machine = append(f.server, r.serverCPUs), append(f.machine, r.machineCPUs)
				f.drops = append(f.drops, r.serverDrops)
			}
		}
	}
	ver, _ := exec.Command(ServerBinary(), "--version").Output()
	fmt.Printf("VPN server: %s\n", strings.SplitN(string(ver), "\n", 2)[0])
	fmt.Printf("bulk TCP through the forwarded port: median of %d interleaved %ss iperf3 runs, %d TCP connection(s) each; CPU = the client process's own user+system time\n", rounds, secs, streams)
	fmt.Printf("  %-36s %28s   %28s\n", "", "download (internet -> service)", "upload (service -> internet)")
	fmt.Printf("  %-36s %8s %7s %11s   %8s %7s %11s\n", "client", "Mbit/s", "x ref", "CPU s/GB", "Mbit/s", "x ref", "CPU s/GB")
	for c, cl := range clients {
		fmt.Printf("  %-36s", cl.name)
		for dir := 0; dir < 2; dir++ {
			f := fig[c][dir]
			fmt.Printf(" %8.0f %7.2f %11.2f  ", median(f.rate), median(f.rate)/median(fig[0][dir].rate), median(f.cpu))
		}
		fmt.Println()
	}
	fmt.Printf("  CPUs busy during each client's runs (median), the VPN server / the whole machine (of %d):\n", runtime.NumCPU())
	for c, cl := range clients {
		fmt.Printf("    %-36s download %.2f / %.2f, upload %.2f / %.2f\n", cl.name,
			median(fig[c][0].server), median(fig[c][0].machine), median(fig[c][1].server), median(fig[c][1].machine))
	}
	// Datagrams the VPN server's UDP socket had no room for (it reads
	// one per system call): where the uploads lose packets on this
	// testbed, for every client alike.
	fmt.Printf("  datagrams dropped at the VPN server's socket (median share of those that reached it):\n")
	for c, cl := range clients {
		fmt.Printf("    %-36s download %.1f %%, upload %.1f %%\n", cl.name, 100*median(fig[c][0].drops), 100*median(fig[c][1].drops))
	}
	fmt.Printf("memory after the bulk runs, RSS (peak):\n")
	for _, cl := range clients {
		m := rss(t, cl.pid)
		fmt.Printf("    %-36s %.1f MB (%.1f MB)\n", cl.name, m.cur, m.peak)
	}
	// VPNFWD_BENCH_SETTLE=S: RSS every 10 s for S seconds more, idle.
	if settle > 0 {
		for i := 10; i <= settle; i += 10 {
			time.Sleep(10 * time.Second)
			fmt.Printf("  %3d s later, RSS:", i)
			for _, cl := range clients {
				fmt.Printf(" %.1f MB", rss(t, cl.pid).cur)
			}
			fmt.Println()
		}
	}

	up.Signal(syscall.SIGTERM, 5*time.Second)
	tunUp.Signal(syscall.SIGTERM, 5*time.Second)
}

// cpuSeconds is a process's user + system CPU time so far (/proc/PID/stat,
// in clock ticks of 1/100 s).
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count from its ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64) // field 14
	st, _ := strconv.ParseFloat(f[12], 64) // field 15
	return (ut + st) / 100
}

// benchKnob reads a whole-number setting from the environment: def when
// unset; not a number, negative, or 0 where def is not, fails the test.
func benchKnob(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || (n == 0 && def > 0) {
		t.Fatalf("%s=%q: want a whole number (at least %d)", name, v, min(def, 1))
	}
	return n
}

// machineBusy is the CPU time the whole machine has spent on anything but
// idling so far (/proc/stat, in clock ticks of 1/100 s).
func machineBusy(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	busy := 0.0
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		busy += x
	}
	return busy / 100
}

// udpCounters are a namespace's UDP datagrams received and dropped for
// want of socket buffer room so far (/proc/net/snmp: InDatagrams,
// RcvbufErrors).
func udpCounters(t *testing.T, n *Net, ns string) (in, drops float64) {
	var names []string
	for _, l := range strings.Split(n.Must(ns, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i := 1; i < len(f) && i < len(names); i++ {
			x, _ := strconv.ParseFloat(f[i], 64)
			switch names[i] {
			case "InDatagrams":
				in = x
			case "RcvbufErrors":
				drops = x
			}
		}
		return in, drops
	}
	t.Fatalf("no Udp counters in %s's /proc/net/snmp", ns)
	return 0, 0
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
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
