package rootnet

import (
	"cmp"
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

	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// TestWholePath is the whole-path benchmark (bench/whole-path.sh runs it;
// it skips unless VPNFWD_BENCH=1). On the namespace testbed it measures,
// against the reference a user picks today: the current wireguard-go
// (built from the module vpnfwd requires, or VPNFWD_BENCH_WG=PATH) as both
// the VPN server and the kernel-TUN reference client, and Debian's older
// wireguard-go as a second, labelled client when it is installed
// (VPNFWD_BENCH_DEBIAN=0 leaves it out):
//   - start to port reachable from the internet namespace in each mode
//     (netstack, --tun, exec), and exec in the runs below too;
//   - bulk TCP through the forwarded port in both directions, one
//     connection, and many (VPNFWD_BENCH_MANY, 50: a seeding client's
//     peers) with the spread between them;
//   - UDP as uTP uses it: iperf3 -u with 1,200-byte datagrams at the
//     offered rates of VPNFWD_BENCH_UDP (Mbit/s, "300,800"; "0" skips),
//     the loss each way, and where the client dropped them (its kernel's
//     UDP sockets, vpnfwd's stack);
//   - for each run, the client process's own CPU time per GB and the whole
//     machine's (/proc/stat, all CPUs: a kernel-TUN client's TCP work is
//     charged to the kernel, not to its process), how busy the VPN server
//     was and what share of the datagrams its socket dropped;
//   - vpnfwd's resident memory with 1,000 bridged TCP connections and
//     1,000 UDP peers, and every client's after the bulk runs;
//   - a seedbox's load (bench_seedbox_test.go): 200 peers downloading at
//     1 Mbit/s each from a service behind the reference, the netstack and
//     --tun in turn, with each one's CPUs and memory over idle
//     (VPNFWD_BENCH_SEEDBOX rounds, 1; 0 skips; VPNFWD_BENCH_SEEDBOX_ONLY=1
//     runs only this comparison, without Debian's client or exec).
//
// Every client runs on a host of its own and the runs are interleaved, so
// machine noise hits all alike. VPNFWD_BENCH_BIN measures another vpnfwd
// binary and VPNFWD_BENCH_BIN2 adds one (an older build, for a
// before/after in one run); VPNFWD_BENCH_ROUNDS, _SECONDS and _STREAMS
// (TCP connections of the bulk runs) set the runs, VPNFWD_BENCH_TCP=0
// leaves the one-connection bulk runs out; VPNFWD_BENCH_GOMAXPROCS
// runs every Go client (the reference too) with that many Ps, as on a
// small ARM board; VPNFWD_BENCH_PERF=DIR records each client's CPU profile
// with perf during the first round; VPNFWD_BENCH_SETTLE=S follows the RSS
// for S seconds after the runs.
func TestWholePath(t *testing.T) {
	if os.Getenv("VPNFWD_BENCH") != "1" {
		t.Skip("set VPNFWD_BENCH=1 (bench/whole-path.sh)")
	}
	// The knobs are read before the testbed is built: a bad value fails
	// at once.
	dur := benchKnob(t, "VPNFWD_BENCH_SECONDS", 5)
	secs := strconv.Itoa(dur)
	rounds := benchKnob(t, "VPNFWD_BENCH_ROUNDS", 3)
	streams := benchKnob(t, "VPNFWD_BENCH_STREAMS", 1)
	many := benchKnob(t, "VPNFWD_BENCH_MANY", 50, true)
	settle := benchKnob(t, "VPNFWD_BENCH_SETTLE", 0)
	procs := benchKnob(t, "VPNFWD_BENCH_GOMAXPROCS", 0)
	udpRates := benchRates(t, "VPNFWD_BENCH_UDP", "300,800")
	seedRounds := benchKnob(t, "VPNFWD_BENCH_SEEDBOX", 1, true)
	seedOnly := os.Getenv("VPNFWD_BENCH_SEEDBOX_ONLY") == "1"
	if seedOnly {
		seedRounds = max(seedRounds, 1)
	}
	goEnv := []string{"env"}
	if procs > 0 {
		goEnv = append(goEnv, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	n := New(t, "wg", "nft", "iperf3", "socat", "curl")
	refWG, refVersion := benchWireGuard(t)
	debianWG, _ := exec.LookPath("wireguard-go")
	if os.Getenv("VPNFWD_BENCH_DEBIAN") == "0" || seedOnly {
		debianWG = ""
	}
	t.Setenv("VPNFWD_TEST_WG_SERVER", refWG)
	v := NewVPN(t, n, false)
	bin := os.Getenv("VPNFWD_BENCH_BIN")
	if bin == "" {
		bin = BuildVPNFWD(t, t.TempDir())
	}

	// A kernel-TUN wireguard-go client on host cli<i> (10.2.0.<i+1>), its
	// iperf3 on port.
	kernelClient := func(i int, wg, port string) (*Proc, string) {
		ns := n.NS(fmt.Sprintf("cli%d", i))
		ip := fmt.Sprintf("10.2.0.%d", i+1)
		dev := fmt.Sprintf("wgk%d", i) // its UAPI socket is machine-wide: one name each
		srv := fmt.Sprintf("100.%d.7.1", 64+i)
		n.Link(v.Server, fmt.Sprintf("under%d", i), srv+"/24", ns, "eth0", fmt.Sprintf("100.%d.7.2/24", 64+i))
		ck, _ := tunnel.NewPrivateKey()
		n.Must(v.Server, "wg", "set", "wg"+n.prefix, "peer", ck.Public().String(), "allowed-ips", ip+"/32")
		p := n.Start(ns, append(slices.Clone(goEnv), "WG_PROCESS_FOREGROUND=1", wg, dev)...)
		deadline := time.Now().Add(10 * time.Second)
		for _, err := n.Exec(ns, "ip", "link", "show", dev); err != nil; _, err = n.Exec(ns, "ip", "link", "show", dev) {
			if time.Now().After(deadline) {
				t.Fatalf("%s made no TUN in %s: %s", wg, ns, p.Out)
			}
			time.Sleep(20 * time.Millisecond)
		}
		key := filepath.Join(v.Dir, fmt.Sprintf("cli%d.key", i))
		os.WriteFile(key, []byte(ck.Base64()), 0o600)
		n.Must(ns, "wg", "set", dev, "private-key", key, "peer", v.ServerPub.String(),
			"endpoint", srv+":51820", "allowed-ips", "0.0.0.0/0", "persistent-keepalive", "25")
		n.Must(ns, "ip", "addr", "add", ip+"/32", "dev", dev)
		n.Must(ns, "ip", "link", "set", dev, "up")
		n.Must(ns, "ip", "route", "add", "default", "dev", dev) // the endpoint stays on-link via eth0
		n.Start(ns, "iperf3", "-s", "-B", ip, "-p", port)
		v.Forward(port, ip)
		return p, ns
	}
	// The reference: the current wireguard-go with a kernel TUN, 10.2.0.3.
	kernelWG, refNS := kernelClient(2, refWG, "5202")
	self, _ := os.Executable()
	// Each client's seeding service (see seedbox): the reference's on its
	// tunnel address, 5213; --tun's on 5212, the netstack's behind the
	// bridge on 5209 (and BIN2's on 5211).
	startSeed := func(ns, addr string) {
		p := n.Start(ns, "env", "VPNFWD_HELPER=seed", "VPNFWD_ADDR="+addr, self)
		waitFor(t, func() bool { return strings.Contains(p.Out.String(), "ready") })
	}
	startSeed(refNS, "10.2.0.3:5213")
	v.Forward("5213", "10.2.0.3", "tcp")
	var debianProc *Proc
	var debianNS string
	if debianWG != "" {
		debianProc, debianNS = kernelClient(6, debianWG, "5208") // 10.2.0.7
	}
	// vpnfwd --tun (10.2.0.4) and vpnfwd exec (10.2.0.5) on hosts of their own.
	cli3, ip3, conf3 := v.AddClient(3)
	cli4, ip4, conf4 := v.AddClient(4)

	// Static DNAT on the server, as a provider's forwarded port:
	// 5201, 5203 -> vpnfwd (netstack); 5204, 5205 -> vpnfwd --tun;
	// 5206 -> vpnfwd exec.
	v.Forward("5201", ClientIP)
	v.Forward("5203", ClientIP)
	v.Forward("5209", ClientIP)
	v.Forward("5204", ip3)
	v.Forward("5205", ip3, "tcp")
	v.Forward("5206", ip4, "tcp")
	v.Forward("5210", ip4)

	n.Start(v.Cli, "iperf3", "-s", "-B", "127.0.0.1", "-p", "5201")
	echo := n.Start(v.Cli, "env", "VPNFWD_HELPER=echo", "VPNFWD_ADDR=127.0.0.1:5203", self)
	waitFor(t, func() bool { return strings.Contains(echo.Out.String(), "ready") })
	startSeed(v.Cli, "127.0.0.1:5209")

	// Start to reachable: from starting vpnfwd to the first echo through
	// the forwarded port from the internet namespace (polling with socat).
	reachable := func(port string) bool {
		out, _ := n.ExecInput(v.Inet, "ping\n", "socat", "-T1", "-", "TCP:"+PublicAddr+":"+port)
		return strings.Contains(out, "ping")
	}
	start := time.Now()
	// VPNFWD_BENCH_TRACE=DIR: the netstack vpnfwd's TCP senders' state
	// (netstack.TraceEnv) and the reference's iperf3 sockets' (ss -ti
	// every 20 ms) in DIR, each run's span printed: cwnd and RTT over time.
	traceDir := os.Getenv("VPNFWD_BENCH_TRACE")
	upEnv := slices.Clone(goEnv)
	if traceDir != "" {
		upEnv = append(upEnv, netstack.TraceEnv+"="+filepath.Join(traceDir, "netstack.csv"))
	}
	upArgs := append(upEnv, bin, "up", "--wg-config", v.ClientConf, "--provider", "static", "--port", "5201,5203,5209",
		"--forward", "127.0.0.1", "--log-level", "warn",
		// The load comes from one address here; in life, from 1,000.
		"--max-connections-per-source", "2000", "--max-udp-flows-per-source", "2000")
	up := n.Start(v.Cli, upArgs...)
	waitFor(t, func() bool { return reachable("5203") })
	fmt.Printf("start to port reachable from the internet (socat polling):\n")
	fmt.Printf("  netstack (default)   %4d ms\n", time.Since(start).Milliseconds())

	n.Start(cli3, "socat", "TCP-LISTEN:5205,fork,reuseaddr", "EXEC:cat")
	n.Start(cli3, "iperf3", "-s", "-p", "5204") // no -B: the address comes with the TUN
	startSeed(cli3, ":5212")
	v.Forward("5212", ip3, "tcp")
	start = time.Now()
	tunUp := n.Start(cli3, append(slices.Clone(goEnv), bin, "up", "--tun", "wgt", "--wg-config", conf3, "--provider", "static",
		"--port", "5204,5205,5212", "--dns-listen", "off", "--log-level", "warn")...)
	waitFor(t, func() bool { return reachable("5205") })
	fmt.Printf("  --tun                %4d ms\n", time.Since(start).Milliseconds())

	var execUp *Proc
	if !seedOnly {
		start = time.Now()
		// exec's CMD serves the echo (for start to reachable) and an iperf3
		// server on 5210 (for the runs), inside its own namespace.
		execUp = n.Start(cli4, append(slices.Clone(goEnv), bin, "exec", "--wg-config", conf4, "--provider", "static", "--port", "5206,5210",
			"--dns-listen", "off", "--log-level", "warn", "--", "sh", "-c",
			"socat TCP-LISTEN:5206,fork,reuseaddr EXEC:cat & exec iperf3 -s -p 5210")...)
		waitFor(t, func() bool { return reachable("5206") })
		fmt.Printf("  exec                 %4d ms (including CMD's start)\n", time.Since(start).Milliseconds())
	}

	// VPNFWD_BENCH_BIN2: a second vpnfwd build in netstack mode, on a host
	// of its own (10.2.0.6, port 5207), measured in the same rounds.
	var other *Proc
	var otherNS string
	if bin2 := os.Getenv("VPNFWD_BENCH_BIN2"); bin2 != "" {
		cli5, ip5, conf5 := v.AddClient(5)
		otherNS = cli5
		v.Forward("5207", ip5)
		v.Forward("5211", ip5, "tcp")
		n.Start(cli5, "iperf3", "-s", "-B", "127.0.0.1", "-p", "5207")
		startSeed(cli5, "127.0.0.1:5211")
		other = n.Start(cli5, append(slices.Clone(goEnv), bin2, "up", "--wg-config", conf5, "--provider", "static", "--port", "5207,5211",
			"--forward", "127.0.0.1", "--dns-listen", "off", "--log-level", "warn",
			"--max-connections-per-source", "2000", "--max-udp-flows-per-source", "2000")...)
		waitFor(t, func() bool {
			_, err := n.Exec(v.Inet, "socat", "-T1", "/dev/null", "TCP:"+PublicAddr+":5207")
			return err == nil
		})
	}

	// The runs after a load get a fresh vpnfwd: the load's aftermath (its
	// heap near the soft memory limit) would weigh on the first client only.
	restart := func() {
		up.Signal(syscall.SIGTERM, 5*time.Second)
		up = n.Start(v.Cli, upArgs...)
		waitFor(t, func() bool { return reachable("5203") })
	}
	if !seedOnly {
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
		restart()
	}

	// A seedbox's load (seedbox) through each client in the same rounds:
	// the reference, the netstack, --tun (and BIN2).
	if seedRounds > 0 {
		targets := []seedTarget{
			{"kernel-TUN wireguard-go " + refVersion + " (reference)", "5213", kernelWG.Cmd.Process.Pid, refNS, false},
			{"vpnfwd (netstack, --forward)", "5209", up.Cmd.Process.Pid, v.Cli, true},
			{"vpnfwd --tun", "5212", tunUp.Cmd.Process.Pid, cli3, true},
		}
		if other != nil {
			targets = append(targets, seedTarget{"vpnfwd (netstack, VPNFWD_BENCH_BIN2)", "5211", other.Cmd.Process.Pid, otherNS, true})
		}
		seedbox(t, n, v.Inet, self, targets, seedRounds)
	}
	if seedOnly {
		up.Signal(syscall.SIGTERM, 5*time.Second)
		tunUp.Signal(syscall.SIGTERM, 5*time.Second)
		return
	}
	restart()
	if traceDir != "" {
		ss := n.Start(refNS, "sh", "-c", "while :; do echo T $(date +%s.%N); ss -tinH state established '( sport = :5202 )'; sleep 0.02; done")
		defer func() {
			ss.Signal(syscall.SIGTERM, time.Second)
			os.WriteFile(filepath.Join(traceDir, "reference-ss.txt"), []byte(ss.Out.String()), 0o644)
		}()
	}

	// One iperf3 run (dir 0: download, 1: upload -R) through a client's
	// forwarded port: TCP with conns connections, or UDP at udpMbps.
	serverPid := v.server.Cmd.Process.Pid
	type benchClient struct {
		name, port string
		pid        int
		ns         string
		vpnfwd     bool // netstack: its stack's UDP drops are in its status
	}
	// stackDrops is a netstack vpnfwd's count of UDP datagrams its stack
	// dropped at a full receive buffer (0 for others).
	stackDrops := func(cl benchClient) float64 {
		if !cl.vpnfwd {
			return 0
		}
		var st struct {
			Forward struct {
				UDPDropped float64 `json:"udp_dropped"`
			}
		}
		out, _ := n.Exec(cl.ns, bin, "status", "--json")
		json.Unmarshal([]byte(out), &st)
		return st.Forward.UDPDropped
	}
	iperf := func(cl benchClient, dir, conns, udpMbps int) runResult {
		port, pid := cl.port, cl.pid
		args := []string{"iperf3", "-c", PublicAddr, "-p", port, "-t", secs, "-J"}
		if udpMbps > 0 {
			args = append(args, "-u", "-b", strconv.Itoa(udpMbps)+"M", "-l", "1200")
		} else {
			args = append(args, "-P", strconv.Itoa(conns))
		}
		if dir == 1 {
			args = append(args, "-R")
		}
		procs0 := procCPUs()
		cpu0, srv0, busy0, wall0 := cpuSeconds(t, pid), cpuSeconds(t, serverPid), machineBusy(t), time.Now()
		in0, drop0 := udpCounters(t, n, v.Server)
		_, cdrop0 := udpCounters(t, n, cl.ns)
		sdrop0 := stackDrops(cl)
		tcp0 := inetTCP(t, n, v.Inet)
		// iperf3 runs secs, then reports: Exec's 10-s limit would kill
		// a longer run.
		out, err := n.ExecTimeout(v.Inet, time.Duration(dur+20)*time.Second, args...)
		if err != nil {
			t.Fatalf("iperf3 %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		wall := time.Since(wall0).Seconds()
		cpu, busy := cpuSeconds(t, pid)-cpu0, machineBusy(t)-busy0
		procs1 := procCPUs()
		in1, drop1 := udpCounters(t, n, v.Server)
		_, cdrop1 := udpCounters(t, n, cl.ns)
		sdrop1 := stackDrops(cl)
		tcp1 := inetTCP(t, n, v.Inet)
		var r struct {
			End struct {
				SumReceived struct {
					Bytes         float64 `json:"bytes"`
					BitsPerSecond float64 `json:"bits_per_second"`
					LostPercent   float64 `json:"lost_percent"`
					Packets       float64 `json:"packets"`
				} `json:"sum_received"`
				Streams []struct {
					Receiver struct {
						BitsPerSecond float64 `json:"bits_per_second"`
					} `json:"receiver"`
				} `json:"streams"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.End.SumReceived.Bytes == 0 {
			t.Fatalf("iperf3 to port %s: %v\n%s", port, err, out)
		}
		gb := r.End.SumReceived.Bytes / 1e9
		inet := tcp1.minus(tcp0)
		// The segments the internet end received (downloads) or sent
		// (uploads) per MB: the client's ACKs, or the ACKs it was sent.
		acks := inet.in
		if dir == 1 {
			acks = inet.out
		}
		res := runResult{
			mbps:         r.End.SumReceived.BitsPerSecond / 1e6,
			cpuPerGB:     cpu / gb,
			machinePerGB: busy / gb,
			serverCPUs:   (cpuSeconds(t, serverPid) - srv0) / wall,
			machineCPUs:  busy / wall,
			serverDrops:  (drop1 - drop0) / max(1, in1-in0+drop1-drop0),
			lost:         r.End.SumReceived.LostPercent,
			inet:         inet,
			acksPerMB:    acks / (gb * 1000),
			shares:       cpuShares(procs0, procs1, pid, serverPid, busy, gb),
		}
		if p := r.End.SumReceived.Packets; p > 0 {
			res.clientDrops = (cdrop1 - cdrop0) / p
			res.stackDrops = (sdrop1 - sdrop0) / p
		}
		for _, st := range r.End.Streams {
			res.streams = append(res.streams, st.Receiver.BitsPerSecond/1e6)
		}
		return res
	}
	refName := "kernel-TUN wireguard-go " + refVersion
	clients := []benchClient{
		{refName + " (reference)", "5202", kernelWG.Cmd.Process.Pid, refNS, false},
		{"vpnfwd (netstack, --forward)", "5201", up.Cmd.Process.Pid, v.Cli, true},
		{"vpnfwd --tun", "5204", tunUp.Cmd.Process.Pid, cli3, false},
		{"vpnfwd exec", "5210", execUp.Cmd.Process.Pid, cli4, false},
	}
	if debianProc != nil {
		ver, _ := exec.Command(debianWG, "--version").Output()
		clients = append(clients, benchClient{"kernel-TUN " + strings.Fields(string(ver) + " wireguard-go ?")[1] + " (Debian's)", "5208", debianProc.Cmd.Process.Pid, debianNS, false})
	}
	if other != nil {
		clients = append(clients, benchClient{"vpnfwd (netstack, VPNFWD_BENCH_BIN2)", "5207", other.Cmd.Process.Pid, otherNS, true})
	}
	// runs[kind][client][direction] -> per-round results; the runs are
	// interleaved so that machine noise hits all clients alike.
	type kind struct {
		name           string
		conns, udpMbps int
	}
	var kinds []kind
	if os.Getenv("VPNFWD_BENCH_TCP") != "0" {
		kinds = append(kinds, kind{fmt.Sprintf("bulk TCP, %d connection(s)", streams), streams, 0})
	}
	if many > 0 {
		kinds = append(kinds, kind{fmt.Sprintf("many peers: %d TCP connections at once", many), many, 0})
	}
	for _, rate := range udpRates {
		kinds = append(kinds, kind{fmt.Sprintf("UDP offered at %d Mbit/s (1,200-byte datagrams)", rate), 0, rate})
	}
	runs := make([][][2][]runResult, len(kinds))
	for k := range kinds {
		runs[k] = make([][2][]runResult, len(clients))
	}
	dirName := [2]string{"down", "up"}
	for i := 0; i < rounds; i++ {
		for k, kd := range kinds {
			for dir := 0; dir < 2; dir++ {
				for c, cl := range clients {
					var perf *exec.Cmd
					if pdir := os.Getenv("VPNFWD_BENCH_PERF"); pdir != "" && i == 0 {
						// perf record of this client's process during this run.
						perf = exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(cl.pid),
							"-o", filepath.Join(pdir, fmt.Sprintf("perf-%s-%d-%s.data", cl.port, k, dirName[dir])), "--", "sleep", secs)
						perf.Start()
					}
					from := time.Now()
					runs[k][c][dir] = append(runs[k][c][dir], iperf(cl, dir, kd.conns, kd.udpMbps))
					if traceDir != "" {
						fmt.Printf("trace: round %d, %s, %s, %s: %.3f..%.3f\n", i, kd.name, dirName[dir], cl.name,
							float64(from.UnixMilli())/1000, float64(time.Now().UnixMilli())/1000)
					}
					if perf != nil {
						perf.Wait()
					}
				}
			}
		}
	}
	ver, _ := exec.Command(ServerBinary(), "--version").Output()
	fmt.Printf("VPN server and reference client: %s (%s)\n", strings.SplitN(string(ver), "\n", 2)[0], refWG)
	if procs > 0 {
		fmt.Printf("every Go client (the reference too) with GOMAXPROCS=%d\n", procs)
	}
	fmt.Printf("medians of %d interleaved %ss iperf3 runs per figure; CPU s/GB: the client process's own user+system time, and the whole machine's (all %d CPUs: server, iperf3 and kernel included) per GB moved\n", rounds, secs, runtime.NumCPU())
	med := func(rs []runResult, f func(runResult) float64) float64 {
		x := make([]float64, len(rs))
		for i, r := range rs {
			x[i] = f(r)
		}
		return median(x)
	}
	for k, kd := range kinds {
		fmt.Printf("%s\n", kd.name)
		if kd.udpMbps > 0 {
			fmt.Printf("  %-50s %24s   %24s\n", "", "in (internet -> service)", "out (service -> internet)")
			fmt.Printf("  %-50s %8s %7s %8s   %8s %7s %8s\n", "client", "Mbit/s", "lost %", "CPU s/GB", "Mbit/s", "lost %", "CPU s/GB")
			for c, cl := range clients {
				fmt.Printf("  %-50s", cl.name)
				for dir := 0; dir < 2; dir++ {
					rs := runs[k][c][dir]
					fmt.Printf(" %8.0f %7.2f %8.2f  ", med(rs, func(r runResult) float64 { return r.mbps }),
						med(rs, func(r runResult) float64 { return r.lost }), med(rs, func(r runResult) float64 { return r.cpuPerGB }))
				}
				fmt.Println()
			}
			// Where the lost datagrams went on the client's side: its
			// kernel's UDP sockets (the WireGuard socket, a loopback hop)
			// and vpnfwd's stack, % of those received, medians.
			fmt.Printf("  dropped in the client, %% (kernel sockets / netstack): ")
			for c, cl := range clients {
				fmt.Printf("%s", cl.name)
				for dir := 0; dir < 2; dir++ {
					rs := runs[k][c][dir]
					fmt.Printf(" %s %.2f / %.2f", dirName[dir], 100*med(rs, func(r runResult) float64 { return r.clientDrops }),
						100*med(rs, func(r runResult) float64 { return r.stackDrops }))
				}
				fmt.Printf("; ")
			}
			fmt.Println()
			continue
		}
		fmt.Printf("  %-50s %38s   %38s\n", "", "download (internet -> service)", "upload (service -> internet)")
		fmt.Printf("  %-50s %8s %6s %11s %10s   %8s %6s %11s %10s\n", "client", "Mbit/s", "x ref", "CPU s/GB", "machine", "Mbit/s", "x ref", "CPU s/GB", "machine")
		for c, cl := range clients {
			fmt.Printf("  %-50s", cl.name)
			for dir := 0; dir < 2; dir++ {
				rs := runs[k][c][dir]
				rate := med(rs, func(r runResult) float64 { return r.mbps })
				ref := med(runs[k][0][dir], func(r runResult) float64 { return r.mbps })
				fmt.Printf(" %8.0f %6.2f %11.2f %10.2f  ", rate, rate/ref,
					med(rs, func(r runResult) float64 { return r.cpuPerGB }), med(rs, func(r runResult) float64 { return r.machinePerGB }))
			}
			fmt.Println()
		}
		if kd.conns > 1 {
			// The spread between the connections of one run: the slowest
			// and fastest connection's Mbit/s and Jain's fairness index
			// (1: all equal), medians over the rounds.
			fmt.Printf("  per connection (min / max Mbit/s, Jain's fairness index):\n")
			for c, cl := range clients {
				fmt.Printf("    %-48s", cl.name)
				for dir := 0; dir < 2; dir++ {
					rs := runs[k][c][dir]
					fmt.Printf(" %s %.1f / %.1f, %.3f;", dirName[dir], med(rs, func(r runResult) float64 { return slices.Min(r.streams) }),
						med(rs, func(r runResult) float64 { return slices.Max(r.streams) }), med(rs, func(r runResult) float64 { return jain(r.streams) }))
				}
				fmt.Println()
			}
		}
		// The internet end's kernel TCP, medians per run: downloads are
		// sent by it (its retransmissions), uploads received (what came
		// twice, sent again needlessly by the client's TCP, and what came
		// out of order, after a loss).
		fmt.Printf("  at the internet end, segments per run (median): down, retransmitted by it; up, received twice (DSACK) / out of order:\n")
		for c, cl := range clients {
			d, u := runs[k][c][0], runs[k][c][1]
			fmt.Printf("    %-48s down %.0f; up %.0f / %.0f\n", cl.name, med(d, func(r runResult) float64 { return r.inet.retrans }),
				med(u, func(r runResult) float64 { return r.inet.dupes }), med(u, func(r runResult) float64 { return r.inet.ofo }))
		}
		fmt.Printf("  ACKs per MB moved (median): down, the segments the internet end received; up, those it sent:\n")
		for c, cl := range clients {
			d, u := runs[k][c][0], runs[k][c][1]
			fmt.Printf("    %-48s down %.1f; up %.1f\n", cl.name, med(d, func(r runResult) float64 { return r.acksPerMB }),
				med(u, func(r runResult) float64 { return r.acksPerMB }))
		}
		// Where the whole machine's CPU went, s/GB (medians): the
		// client, the VPN server, softirqs, and by command name.
		fmt.Printf("  the machine's CPU s/GB by where it went (median; over 0.05):\n")
		for c, cl := range clients {
			for dir := 0; dir < 2; dir++ {
				rs := runs[k][c][dir]
				names := map[string]bool{}
				for _, r := range rs {
					for name := range r.shares {
						names[name] = true
					}
				}
				type share struct {
					name string
					v    float64
				}
				var sh []share
				for name := range names {
					v := med(rs, func(r runResult) float64 { return r.shares[name] })
					if v >= 0.05 {
						sh = append(sh, share{name, v})
					}
				}
				slices.SortFunc(sh, func(a, b share) int { return cmp.Compare(b.v, a.v) })
				fmt.Printf("    %-48s %s:", cl.name, dirName[dir])
				for _, x := range sh {
					fmt.Printf(" %s %.2f", x.name, x.v)
				}
				fmt.Println()
			}
		}
		fmt.Printf("  CPUs busy (median), the VPN server / the whole machine (of %d); datagrams dropped at the server's socket:\n", runtime.NumCPU())
		for c, cl := range clients {
			d, u := runs[k][c][0], runs[k][c][1]
			fmt.Printf("    %-48s down %.2f / %.2f, %.1f %%; up %.2f / %.2f, %.1f %%\n", cl.name,
				med(d, func(r runResult) float64 { return r.serverCPUs }), med(d, func(r runResult) float64 { return r.machineCPUs }),
				100*med(d, func(r runResult) float64 { return r.serverDrops }),
				med(u, func(r runResult) float64 { return r.serverCPUs }), med(u, func(r runResult) float64 { return r.machineCPUs }),
				100*med(u, func(r runResult) float64 { return r.serverDrops }))
		}
	}
	fmt.Printf("memory after the bulk runs, RSS (peak):\n")
	for _, cl := range clients {
		m := rss(t, cl.pid)
		fmt.Printf("    %-48s %.1f MB (%.1f MB)\n", cl.name, m.cur, m.peak)
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
	execUp.Signal(syscall.SIGTERM, 5*time.Second)
}

// runResult is one iperf3 run through one client.
type runResult struct {
	mbps, cpuPerGB, machinePerGB float64
	serverCPUs, machineCPUs      float64
	serverDrops, lost            float64
	clientDrops, stackDrops      float64   // UDP: datagrams dropped at the client's kernel sockets, in its netstack, per datagram received
	streams                      []float64 // each TCP connection's Mbit/s
	inet                         tcpCounters
	acksPerMB                    float64            // the internet end's segments in (downloads) or out (uploads) per MB: mostly ACKs
	shares                       map[string]float64 // where the machine's CPU went, s/GB (cpuShares)
}

// tcpCounters are a namespace's kernel TCP counters that tell a sender's
// losses from its spurious retransmissions: segments it retransmitted
// (/proc/net/snmp Tcp RetransSegs), and as a receiver, segments that
// came twice (TcpExt TCPDSACKOldSent: it answered with a DSACK) and
// segments that came out of order (TcpExt TCPOFOQueue: one before them
// was lost or late).
// in and out are all the segments it received and sent (Tcp InSegs,
// OutSegs): the ACKs of a run's other end, per MB moved.
type tcpCounters struct{ retrans, dupes, ofo, in, out float64 }

func (a tcpCounters) minus(b tcpCounters) tcpCounters {
	return tcpCounters{a.retrans - b.retrans, a.dupes - b.dupes, a.ofo - b.ofo, a.in - b.in, a.out - b.out}
}

// inetTCP reads ns's tcpCounters.
func inetTCP(t *testing.T, n *Net, ns string) tcpCounters {
	snmp := procCounters(t, n, ns, "/proc/net/snmp", "Tcp:")
	ext := procCounters(t, n, ns, "/proc/net/netstat", "TcpExt:")
	return tcpCounters{snmp["RetransSegs"], ext["TCPDSACKOldSent"], ext["TCPOFOQueue"], snmp["InSegs"], snmp["OutSegs"]}
}

// procCounters reads the counters of one protocol (its prefix, such as
// "Udp:") from a /proc/net file of name lines followed by value lines.
func procCounters(t *testing.T, n *Net, ns, file, prefix string) map[string]float64 {
	var names []string
	for _, l := range strings.Split(n.Must(ns, "cat", file), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != prefix {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		m := map[string]float64{}
		for i := 1; i < len(f) && i < len(names); i++ {
			m[names[i]], _ = strconv.ParseFloat(f[i], 64)
		}
		return m
	}
	t.Fatalf("no %s counters in %s's %s", prefix, ns, file)
	return nil
}

// jain is Jain's fairness index of rates: 1 when all are equal, 1/n when
// one has everything.
func jain(x []float64) float64 {
	var sum, sq float64
	for _, v := range x {
		sum += v
		sq += v * v
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(x)) * sq)
}

// benchRates reads a comma-separated list of Mbit/s ("0": none).
func benchRates(t *testing.T, name, def string) []int {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r < 0 {
			t.Fatalf("%s=%q: want Mbit/s, comma-separated (0: none)", name, v)
		}
		if r > 0 {
			out = append(out, r)
		}
	}
	return out
}

// benchWireGuard is the wireguard-go both the VPN server and the reference
// client run: VPNFWD_BENCH_WG (or VPNFWD_TEST_WG_SERVER), else the current
// one, built from the module vpnfwd requires (what a user without the
// kernel module runs today); and its version.
func benchWireGuard(t *testing.T) (path, version string) {
	path = os.Getenv("VPNFWD_BENCH_WG")
	if path == "" {
		path = os.Getenv("VPNFWD_TEST_WG_SERVER")
	}
	if path == "" {
		path = filepath.Join(t.TempDir(), "wireguard-go")
		build := exec.Command("go", "build", "-trimpath", "-o", path, "golang.zx2c4.com/wireguard")
		build.Dir = repoRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building wireguard-go from the module vpnfwd requires: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(path, "--version").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 {
		t.Fatalf("%s --version: %v %q", path, err, out)
	}
	return path, f[1]
}

// cpuSeconds is a process's user + system CPU time so far.
func cpuSeconds(t *testing.T, pid int) float64 {
	_, secs, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return secs
}

// procStat is a process's command name and user + system CPU time so far
// (/proc/PID/stat, in clock ticks of 1/100 s).
func procStat(pid int) (name string, secs float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	// The command name (field 2) may hold spaces: count from its ")".
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[end+2:])
	ut, _ := strconv.ParseFloat(f[11], 64) // field 14
	st, _ := strconv.ParseFloat(f[12], 64) // field 15
	return s[open+1 : end], (ut + st) / 100, nil
}

// benchKnob reads a whole-number setting from the environment: def when
// unset; not a number, negative, or 0 where def is not (unless zeroOK:
// then 0 turns the part off), fails the test.
func benchKnob(t *testing.T, name string, def int, zeroOK ...bool) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || (n == 0 && def > 0 && len(zeroOK) == 0) {
		t.Fatalf("%s=%q: want a whole number (at least %d)", name, v, min(def, 1))
	}
	return n
}

// procCPUs is every process's user + system seconds by pid, with its
// command name, and the machine's time in softirqs under "softirq" (pid 0).
func procCPUs() map[int]namedCPU {
	out := map[int]namedCPU{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if name, secs, err := procStat(pid); err == nil {
			out[pid] = namedCPU{name, secs}
		}
	}
	if f, err := machineCPU(); err == nil {
		out[0] = namedCPU{"softirq", f[6]}
	}
	return out
}

type namedCPU struct {
	name string
	secs float64
}

// cpuShares is where the machine's CPU went between two procCPUs, per
// GB moved: the client and the VPN server by pid, the rest by command
// name, and what no live process accounts for (processes that ended, such
// as the internet's iperf3 client) as "other".
func cpuShares(a, b map[int]namedCPU, client, server int, busy, gb float64) map[string]float64 {
	out := map[string]float64{}
	sum := 0.0
	for pid, e := range b {
		d := e.secs - a[pid].secs
		if d <= 0 {
			continue
		}
		name := e.name
		switch pid {
		case client:
			name = "client"
		case server:
			name = "server"
		}
		out[name] += d / gb
		sum += d
	}
	out["other"] = max(0, busy-sum) / gb
	return out
}

// machineBusy is the CPU time the whole machine has spent on anything but
// idling so far.
func machineBusy(t *testing.T) float64 {
	f, err := machineCPU()
	if err != nil {
		t.Fatal(err)
	}
	busy := 0.0
	for i, x := range f {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		busy += x
	}
	return busy
}

// machineCPU is the whole machine's CPU time so far in seconds, as
// /proc/stat's first line counts it: user nice system idle iowait irq
// softirq steal guest guest_nice (in clock ticks of 1/100 s there).
func machineCPU() ([]float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return nil, fmt.Errorf("/proc/stat: %q", line)
	}
	out := make([]float64, len(f)-1)
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		out[i] = x / 100
	}
	return out, nil
}

// udpCounters are a namespace's UDP datagrams received and dropped for
// want of socket buffer room so far (/proc/net/snmp: InDatagrams,
// RcvbufErrors).
func udpCounters(t *testing.T, n *Net, ns string) (in, drops float64) {
	c := procCounters(t, n, ns, "/proc/net/snmp", "Udp:")
	return c["InDatagrams"], c["RcvbufErrors"]
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
