package rootnet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFaultSoak: a prober on the internet side connects to the forwarded
// port every 250 ms (following vpnfwd to whichever server it uses) while
// faults come in turn: a local program's NAT-PMP "delete all", the
// gateway restarting with and without its epoch going back (miniupnpd
// with and without Debian's system_uptime=yes), the local service
// restarting, the WireGuard server restarting, a 10-s blackout of the
// link, and the server killed for good with a second one configured.
// Each must be back within its bound; outside the faults and their
// recoveries at least 99.5 % of probes must pass; /healthz may not say
// "ok" for more than 3 s while probes fail. Both data planes. One round
// of faults in CI; VPNFWD_SOAK_MINUTES=30 (bench/soak.sh) keeps going
// round for that long.
func TestFaultSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	t.Run("netstack", func(t *testing.T) { runSoak(t) })
	t.Run("tun", func(t *testing.T) { runSoak(t, "--tun", "wgt") })
}

// soak is the soak's testbed and what it has seen.
type soak struct {
	t       *testing.T
	n       *Net
	servers [2]*VPN
	up      *Proc
	echo    *echoService
	tun     bool
	cur     atomic.Int64 // the server vpnfwd uses (index)
	port    atomic.Int64
	pr      *prober

	mu     sync.Mutex
	health []healthSample
	killed *VPN // a server killed for good, revived after the recovery
}

type healthSample struct {
	at time.Time
	ok bool
}

// soakFault is one fault: inject runs it and returns when the recovery
// clock starts; the port must answer within bound of that.
type soakFault struct {
	name   string
	bound  time.Duration
	inject func(s *soak) time.Time
}

// soakResult is one fault's outcome.
type soakResult struct {
	name        string
	took, bound time.Duration
}

func soakFaults() []soakFault {
	return []soakFault{
		{"NAT-PMP delete-all from a local program", time.Second, func(s *soak) time.Time {
			if err := localDeleteAll(s.n, s.servers[0].Cli, s.tun); err != nil {
				s.t.Error(err)
			}
			return time.Now()
		}},
		{"gateway restart, epoch back", 5 * time.Second, func(s *soak) time.Time {
			v := s.server()
			v.StopGateway()
			v.LoseMappings()
			v.GatewayConf()
			v.StartGateway()
			return time.Now()
		}},
		{"gateway restart, epoch not back (system_uptime=yes)", 3 * time.Second, func(s *soak) time.Time {
			v := s.server()
			v.StopGateway()
			v.LoseMappings()
			v.GatewayConf("system_uptime=yes")
			v.StartGateway()
			return time.Now()
		}},
		{"local service restart (down 1 s)", time.Second, func(s *soak) time.Time {
			s.echo.stop()
			time.Sleep(time.Second) // the fault's length
			s.echo.start()
			return time.Now()
		}},
		{"WireGuard server restart", 10 * time.Second, func(s *soak) time.Time {
			v := s.server()
			v.StopServer()
			v.StartServer()
			return time.Now()
		}},
		{"10-s blackout of the link (end of)", 3 * time.Second, func(s *soak) time.Time {
			v := s.server()
			v.Blackout(true)
			time.Sleep(10 * time.Second) // the fault's length
			v.Blackout(false)
			return time.Now()
		}},
		{"server killed for good, second configured", 10 * time.Second, func(s *soak) time.Time {
			v := s.server()
			v.KillServer()
			at := time.Now()
			// It is revived after the recovery (see runSoak), so that
			// the next round has a second server again.
			s.killed = v
			return at
		}},
	}
}

func runSoak(t *testing.T, extra ...string) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "curl")
	v := NewVPN(t, n, true)
	v2 := v.AddServer(true)
	for _, sv := range []*VPN{v, v2} { // as Debian ships miniupnpd
		sv.StopGateway()
		sv.GatewayConf("system_uptime=yes")
		sv.StartGateway()
	}
	s := &soak{t: t, n: n, servers: [2]*VPN{v, v2}, tun: slices.Contains(extra, "--tun")}
	bin := BuildVPNFWD(t, t.TempDir())
	s.echo = startEcho(t, n, v.Cli, "127.0.0.1:7777")
	args := append([]string{bin, "up", "--wg-config", v.ClientConf, "--wg-config", v2.ClientConf, "--provider", "natpmp",
		"--gateway", GatewayIP, "--forward", "127.0.0.1:7777", "--lifetime", "60s"}, extra...)
	s.up = n.Start(v.Cli, args...)
	s.port.Store(int64(waitForPort(t, n, v.Cli, bin)))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vpnfwd log:\n%s", s.up.Out)
		}
	})
	stopWatch := s.watch()
	defer stopWatch()
	s.pr = startProberTo(t, n, v.Inet, func() string {
		return fmt.Sprintf("%s:%d", s.servers[s.cur.Load()].Public, s.port.Load())
	})
	s.pr.recovered(t, time.Time{}, 10*time.Second)

	minutes, _ := strconv.ParseFloat(os.Getenv("VPNFWD_SOAK_MINUTES"), 64)
	until := time.Now().Add(time.Duration(minutes * float64(time.Minute)))
	var results []soakResult
	var windows [][2]time.Time
	begin := time.Now()
	for round := 1; ; round++ {
		for _, f := range soakFaults() {
			time.Sleep(2 * time.Second) // calm between faults: probes must pass here
			start := time.Now()
			clock := f.inject(s)
			took, back := s.pr.recovered(t, clock, f.bound+10*time.Second)
			results = append(results, soakResult{f.name, took, f.bound})
			windows = append(windows, [2]time.Time{start, back.Add(300 * time.Millisecond)})
			if took > f.bound {
				t.Errorf("round %d, %s: port back after %s, allowed %s", round, f.name, took.Round(100*time.Millisecond), f.bound)
			}
			if s.killed != nil {
				s.killed.StartServer()
				s.killed = nil
			}
			if s.up.Cmd.ProcessState != nil {
				t.Fatalf("vpnfwd exited: %s", s.up.Cmd.ProcessState)
			}
		}
		if time.Now().After(until) {
			t.Logf("%d rounds of %d faults in %s", round, len(soakFaults()), time.Since(begin).Round(time.Second))
			break
		}
	}
	time.Sleep(2 * time.Second)
	s.pr.close()
	s.report(results, windows, extra)
	if _, err := s.up.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Error(err)
	}
}

// server is the server vpnfwd uses now.
func (s *soak) server() *VPN { return s.servers[s.cur.Load()] }

// watch follows vpnfwd's server and port (status) and records /healthz
// every 250 ms, until the returned stop is called.
func (s *soak) watch() (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			var st struct {
				Tunnel struct{ Endpoint string }
				Port   struct{ Port int }
			}
			if code, body, err := s.api("/v1/status"); err == nil && code == 200 && json.Unmarshal([]byte(body), &st) == nil {
				for i, sv := range s.servers {
					if strings.HasPrefix(st.Tunnel.Endpoint, sv.Under+":") {
						s.cur.Store(int64(i))
					}
				}
				if st.Port.Port != 0 {
					s.port.Store(int64(st.Port.Port))
				}
			}
			code, _, err := s.api("/healthz")
			s.mu.Lock()
			s.health = append(s.health, healthSample{time.Now(), err == nil && code == 200})
			s.mu.Unlock()
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(quit); <-done }
}

// api asks vpnfwd's control API in the client namespace (a plain HTTP/1.0
// request on a socket made there).
func (s *soak) api(path string) (int, string, error) {
	var c net.Conn
	err := s.n.InNS(s.servers[0].Cli, func() (err error) {
		c, err = net.DialTimeout("tcp", "127.0.0.1:9070", time.Second)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text())
	}
	return resp.StatusCode, b.String(), nil
}

// report checks and logs the figures: each fault's recovery, the probes
// outside the fault windows, and how long /healthz said "ok" while probes
// failed.
func (s *soak) report(results []soakResult, windows [][2]time.Time, extra []string) {
	t := s.t
	plane := "netstack"
	if s.tun {
		plane = "tun"
	}
	// A probe is in a fault's window when any part of it is: one that
	// started just before the fault was injected and was cut by it (a
	// blackout, a killed server) says nothing about the calm between.
	inWindow := func(p probe) bool {
		for _, w := range windows {
			if p.at.Before(w[1]) && p.done.After(w[0]) {
				return true
			}
		}
		return false
	}
	s.pr.mu.Lock()
	probes := slices.Clone(s.pr.probes)
	s.pr.mu.Unlock()
	outside, outsideOK := 0, 0
	for _, p := range probes {
		if !inWindow(p) {
			outside++
			if p.ok {
				outsideOK++
			} else {
				t.Logf("probe outside the faults failed at %s (took %s): %v", p.at.Format("15:04:05.000"), p.done.Sub(p.at).Round(time.Millisecond), p.err)
			}
		}
	}
	share := 100 * float64(outsideOK) / float64(max(outside, 1))
	if share < 99.5 {
		t.Errorf("outside the faults %d of %d probes passed (%.2f %%, want at least 99.5 %%)", outsideOK, outside, share)
	}
	worst := s.healthOKWhileFailing(probes)
	if worst > 3*time.Second {
		t.Errorf("/healthz said ok for %s while probes failed (allowed 3 s)", worst.Round(100*time.Millisecond))
	}
	var lines []string
	byName := map[string][]time.Duration{}
	var order []string
	for _, r := range results {
		if _, ok := byName[r.name]; !ok {
			order = append(order, r.name)
		}
		byName[r.name] = append(byName[r.name], r.took)
	}
	bounds := map[string]time.Duration{}
	for _, f := range soakFaults() {
		bounds[f.name] = f.bound
	}
	for _, name := range order {
		d := byName[name]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		lines = append(lines, fmt.Sprintf("| %s | %s | %d | %.1f s | %.1f s | %.0f s |", name, plane, len(d), d[len(d)/2].Seconds(), d[len(d)-1].Seconds(), bounds[name].Seconds()))
	}
	lines = append(lines, fmt.Sprintf("probes outside the faults (%s): %d of %d passed (%.2f %%); all probes %d; /healthz ok while probes failed: at most %.1f s",
		plane, outsideOK, outside, share, len(probes), worst.Seconds()))
	for _, l := range lines {
		t.Log(l)
	}
	if path := os.Getenv("VPNFWD_FIGURES"); path != "" {
		path += "." + strings.ReplaceAll(t.Name(), "/", "-")
		os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	}
}

// healthOKWhileFailing is the longest time /healthz said ok without a
// break during a run of failed probes.
func (s *soak) healthOKWhileFailing(probes []probe) time.Duration {
	s.mu.Lock()
	health := slices.Clone(s.health)
	s.mu.Unlock()
	var worst time.Duration
	for i := 0; i < len(probes); {
		if probes[i].ok {
			i++
			continue
		}
		j := i
		for j+1 < len(probes) && !probes[j+1].ok {
			j++
		}
		from, to := probes[i].at, probes[j].done
		var okFrom time.Time
		for _, h := range health {
			if h.at.Before(from) || h.at.After(to) {
				continue
			}
			switch {
			case h.ok && okFrom.IsZero():
				okFrom = h.at
			case !h.ok:
				okFrom = time.Time{}
			}
			if !okFrom.IsZero() {
				worst = max(worst, h.at.Sub(okFrom))
			}
		}
		i = j + 1
	}
	return worst
}
