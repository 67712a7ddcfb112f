package rootnet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoService is the local service behind vpnfwd: TCP and UDP echo on
// 127.0.0.1 inside a namespace, which the test can stop and start again.
type echoService struct {
	t    *testing.T
	n    *Net
	ns   string
	addr string
	mu   sync.Mutex
	l    net.Listener
	pc   net.PacketConn
	// accepted counts the TCP connections the service accepted.
	accepted atomic.Int64
}

func startEcho(t *testing.T, n *Net, ns, addr string) *echoService {
	e := &echoService{t: t, n: n, ns: ns, addr: addr}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *echoService) start() {
	e.t.Helper()
	err := e.n.InNS(e.ns, func() error {
		l, err := net.Listen("tcp", e.addr)
		if err != nil {
			return err
		}
		pc, err := net.ListenPacket("udp", e.addr)
		if err != nil {
			l.Close()
			return err
		}
		e.mu.Lock()
		e.l, e.pc = l, pc
		e.mu.Unlock()
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	l, pc := e.l, e.pc
	e.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
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
}

func (e *echoService) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.l != nil {
		e.l.Close()
		e.pc.Close()
		e.l, e.pc = nil, nil
	}
}

// probe is one connection attempt by the prober: when it started and
// when it ended.
type probe struct {
	at, done time.Time
	ok       bool
	err      error
}

// prober connects to the forwarded port from the internet namespace every
// 250 ms and checks that the service echoes, as a remote peer would.
type prober struct {
	mu     sync.Mutex
	probes []probe
	stop   chan struct{}
	done   chan struct{}
}

func startProber(t *testing.T, n *Net, ns, addr string) *prober {
	return startProberTo(t, n, ns, func() string { return addr })
}

// startProberTo is a prober whose target may move (vpnfwd moved to
// another server): target is asked before every probe.
func startProberTo(t *testing.T, n *Net, ns string, target func() string) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			at := time.Now()
			addr := target()
			err := n.InNS(ns, func() error { return echoOnce(addr, "probe") })
			p.mu.Lock()
			p.probes = append(p.probes, probe{at, time.Now(), err == nil, err})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *prober) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// echoOnce dials addr over TCP, sends msg and wants it back within 1 s.
func echoOnce(addr, msg string) error { return echoFrom("", addr, msg) }

// echoFrom is echoOnce from a chosen source address ("": any).
func echoFrom(src, addr, msg string) error {
	d := net.Dialer{Timeout: time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != msg+"\n" {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

// recovered waits for the first good probe that started at or after
// since, and returns how long after since it started and when it ended
// (a probe that starts while the tunnel is still coming back may wait
// for it: its end is when the tunnel surely works).
func (p *prober) recovered(t *testing.T, since time.Time, within time.Duration) (time.Duration, time.Time) {
	t.Helper()
	deadline := time.Now().Add(within + 2*time.Second)
	for {
		p.mu.Lock()
		for _, pr := range p.probes {
			if pr.ok && !pr.at.Before(since) {
				p.mu.Unlock()
				return pr.at.Sub(since), pr.done
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("the forwarded port did not come back within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failedBetween counts failed probes that started in [from, to), the
// most of them in a row (longest), and says when each failed one started
// (after from) and how it failed.
func (p *prober) failedBetween(from, to time.Time) (failed, total, longest int, how string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var hows []string
	run := 0
	for _, pr := range p.probes {
		if pr.at.Before(from) || !pr.at.Before(to) {
			continue
		}
		total++
		if pr.ok {
			run = 0
			continue
		}
		failed++
		run++
		longest = max(longest, run)
		hows = append(hows, fmt.Sprintf("+%.2fs (took %.2fs): %v", pr.at.Sub(from).Seconds(), pr.done.Sub(pr.at).Seconds(), pr.err))
	}
	return failed, total, longest, strings.Join(hows, "; ")
}

// upWithEcho starts vpnfwd (NAT-PMP against miniupnpd) in the client
// namespace with an echo service behind it, and returns the process, the
// forwarded port and the public address to reach it.
func upWithEcho(t *testing.T, n *Net, v *VPN, extra ...string) (*Proc, *echoService, int, string) {
	t.Helper()
	bin := BuildVPNFWD(t, t.TempDir())
	addr := "127.0.0.1:7777"
	if slices.Contains(extra, "--tun") {
		addr = ":7777" // the forwarded port is redirected to the TUN's address
	}
	echo := startEcho(t, n, v.Cli, addr)
	args := append([]string{bin, "up", "--wg-config", v.ClientConf, "--provider", "natpmp", "--gateway", GatewayIP,
		"--forward", "127.0.0.1:7777", "--lifetime", "60s"}, extra...)
	up := n.Start(v.Cli, args...)
	port := waitForPort(t, n, v.Cli, bin)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vpnfwd log:\n%s", up.Out)
		}
	})
	return up, echo, port, fmt.Sprintf("%s:%d", PublicAddr, port)
}

func currentPort(t *testing.T, n *Net, v *VPN) int {
	t.Helper()
	out, err := n.Exec(v.Cli, "curl", "-sS", "--max-time", "2", "http://127.0.0.1:9070/v1/port")
	if err != nil {
		t.Fatalf("API: %v", err)
	}
	var p struct{ Port int }
	json.Unmarshal([]byte(out), &p)
	return p.Port
}
