package rootnet

import (
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A seedbox's load, the same through every client: seeders peers on the
// internet download from a service behind the client at seedRate bytes/s
// each, while the service writes to each connection as fast as it takes
// it, so that every buffer on the way (the service's socket, the bridge,
// vpnfwd's stack, wireguard-go's) fills up. It runs for seedWindow after
// the last peer's first bytes.
const (
	seeders    = 200
	seedRate   = 125000 // 1 Mbit/s
	seedWindow = 15 * time.Second
)

// seedTarget is one client the seedbox load goes through: the port the
// VPN server forwards to its service, its process and namespace.
type seedTarget struct {
	name, port string
	pid        int
	ns         string
	vpnfwd     bool // its API (127.0.0.1:9070 in ns) reports the Go heap
}

// seedResult is one seedbox run through one client.
type seedResult struct {
	peers         int
	mbps          float64 // what the peers read in the window
	cpus, machine float64 // the client's CPUs, and the whole machine's
	rss, peak     float64 // MB
	heap          float64 // MB, vpnfwd's live heap at its last collection
	kernelRecv    float64 // MB held by TCP sockets in the client's namespace: received,
	kernelSend    float64 // and queued to send
}

// seedbox runs the seedbox load through each target rounds times,
// interleaved, and prints each one's medians: CPUs (its own and the
// machine's), resident memory over what it had before its first run, the
// live Go heap over idle (vpnfwd), and the kernel's TCP socket memory in
// the client's namespace (the service's sockets, and for a kernel-TUN
// client the TCP stack's that vpnfwd's netstack holds in its own heap).
func seedbox(t *testing.T, n *Net, inet, self string, targets []seedTarget, rounds int) {
	idle := make([]mem, len(targets))
	idleHeap := make([]float64, len(targets))
	for i, tg := range targets {
		idle[i] = rss(t, tg.pid)
		if tg.vpnfwd {
			idleHeap[i] = liveHeap(n, tg.ns)
		}
	}
	runs := make([][]seedResult, len(targets))
	for r := 0; r < rounds; r++ {
		for i, tg := range targets {
			runs[i] = append(runs[i], seedRun(t, n, inet, self, tg))
		}
	}
	fmt.Printf("seedbox: %d peers downloading at %d kbit/s each from the service behind each client, %s after the last peer's first bytes (medians of %d rounds):\n",
		seeders, seedRate*8/1000, seedWindow, rounds)
	fmt.Printf("  %-48s %5s %7s %6s %8s %8s %9s %9s %15s\n", "client", "peers", "Mbit/s", "CPUs", "machine", "RSS MB", "over idle", "heap over", "kernel MB r / w")
	for i, tg := range targets {
		rs := runs[i]
		med := func(f func(seedResult) float64) float64 {
			x := make([]float64, len(rs))
			for j, r := range rs {
				x[j] = f(r)
			}
			return median(x)
		}
		heap := "-"
		if tg.vpnfwd {
			heap = fmt.Sprintf("%.1f", med(func(r seedResult) float64 { return r.heap })-idleHeap[i])
		}
		fmt.Printf("  %-48s %5.0f %7.0f %6.2f %8.2f %8.1f %9.1f %9s %7.1f / %5.1f\n", tg.name,
			med(func(r seedResult) float64 { return float64(r.peers) }), med(func(r seedResult) float64 { return r.mbps }),
			med(func(r seedResult) float64 { return r.cpus }), med(func(r seedResult) float64 { return r.machine }),
			med(func(r seedResult) float64 { return r.rss }), med(func(r seedResult) float64 { return r.rss })-idle[i].cur,
			heap, med(func(r seedResult) float64 { return r.kernelRecv }), med(func(r seedResult) float64 { return r.kernelSend }))
	}
	fmt.Printf("  (RSS idle before the first round:")
	for i, tg := range targets {
		fmt.Printf(" %s %.1f MB, peak during the rounds %.1f MB;", tg.name, idle[i].cur, rss(t, tg.pid).peak)
	}
	fmt.Println(")")
}

// seedRun is one seedbox run through tg.
func seedRun(t *testing.T, n *Net, inet, self string, tg seedTarget) seedResult {
	a := []string{"ip", "netns", "exec", inet, "env", "VPNFWD_HELPER=leech", "VPNFWD_ADDR=" + PublicAddr + ":" + tg.port,
		"VPNFWD_N=" + strconv.Itoa(seeders), "VPNFWD_RATE=" + strconv.Itoa(seedRate), self}
	leech := exec.Command(a[0], a[1:]...)
	stdin, _ := leech.StdinPipe()
	out := &SyncBuffer{}
	leech.Stdout, leech.Stderr = out, out
	if err := leech.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), "ok "); {
		if time.Now().After(deadline) {
			t.Fatalf("leeching peers through %s: %s", tg.name, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var res seedResult
	res.peers, _ = strconv.Atoi(strings.Fields(out.String())[1])
	// read asks the peers how many bytes they have read so far.
	reads := 0
	read := func() float64 {
		reads++
		io.WriteString(stdin, "\n")
		for deadline := time.Now().Add(10 * time.Second); strings.Count(out.String(), "read ") < reads; {
			if time.Now().After(deadline) {
				t.Fatalf("leeching peers through %s: %s", tg.name, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
		l := strings.Split(strings.TrimSpace(out.String()), "\n")
		b, _ := strconv.ParseFloat(strings.TrimPrefix(l[len(l)-1], "read "), 64)
		return b
	}
	read0, cpu0, busy0, wall0 := read(), cpuSeconds(t, tg.pid), machineBusy(t), time.Now()
	time.Sleep(seedWindow) // the measurement window: the buffers fill in its first seconds
	wall := time.Since(wall0).Seconds()
	res.cpus = (cpuSeconds(t, tg.pid) - cpu0) / wall
	res.machine = (machineBusy(t) - busy0) / wall
	res.mbps = (read() - read0) * 8 / 1e6 / wall
	m := rss(t, tg.pid)
	res.rss, res.peak = m.cur, m.peak
	if tg.vpnfwd {
		res.heap = liveHeap(n, tg.ns)
	}
	res.kernelRecv, res.kernelSend = tcpSocketMem(n, tg.ns)
	stdin.Close()
	leech.Wait()
	return res
}

// liveHeap is a vpnfwd's Go heap live at its last collection, MB (its
// /metrics, 127.0.0.1:9070 in ns): what its buffers hold, where RSS
// also has garbage not yet collected.
func liveHeap(n *Net, ns string) float64 {
	out, _ := n.Exec(ns, "curl", "-sS", "-m", "2", "http://127.0.0.1:9070/metrics")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "vpnfwd_memory_heap_live_bytes" {
			x, _ := strconv.ParseFloat(f[1], 64)
			return x / 1e6
		}
	}
	return 0
}

// skmem is ss's socket memory: bytes received and queued to send.
var skmem = regexp.MustCompile(`skmem:\(r(\d+),rb\d+,t\d+,tb\d+,f\d+,w(\d+)`)

// tcpSocketMem is the memory, MB, of the TCP sockets in ns (ss -tm):
// received but not yet read, and queued to send or awaiting
// acknowledgement.
func tcpSocketMem(n *Net, ns string) (recv, send float64) {
	out, _ := n.Exec(ns, "ss", "-tmnH")
	for _, m := range skmem.FindAllStringSubmatch(out, -1) {
		r, _ := strconv.ParseFloat(m[1], 64)
		w, _ := strconv.ParseFloat(m[2], 64)
		recv += r / 1e6
		send += w / 1e6
	}
	return recv, send
}
