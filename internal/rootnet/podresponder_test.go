package rootnet

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tagged is a TCP service in ns that answers every connection with its
// tag, so the test knows which program the internet reached.
func tagged(t *testing.T, n *Net, ns, addr, tag string) (stop func()) {
	t.Helper()
	var l net.Listener
	if err := n.InNS(ns, func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, tag)
			c.Close()
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { l.Close() }) }
	t.Cleanup(stop)
	return stop
}

// whoAnswers is the tag of the program the internet reaches on the
// VPN's public port ("" if none).
func whoAnswers(n *Net, v *VPN, port int) string {
	var tag string
	n.InNS(v.Inet, func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", PublicAddr, port), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		tag, _ = bufio.NewReader(c).ReadString('\n')
		return nil
	})
	return strings.TrimSpace(tag)
}

// asNobody runs natpmpc (-a PUBLIC PRIVATE PROTO LIFETIME) as an unprivileged user of the namespace (the
// pod's other container).
func asNobody(n *Net, ns string, args ...string) string {
	out, _ := n.Exec(ns, append([]string{"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "natpmpc"}, args...)...)
	return out
}

// TestPodCannotTakeThePort: in tun mode without --forward (the sidecar
// the docs recommend), another program of the pod, unprivileged, cannot
// take the forwarded port from the service that has it, by NAT-PMP or by
// switching protocol, nor silence the responder by flooding it; the
// service stays reachable and /healthz stays true all along.
func TestPodCannotTakeThePort(t *testing.T) {
	n := New(t, "wireguard-go", "wg", "nft", "miniupnpd", "natpmpc", "curl", "setpriv")
	v := NewVPN(t, n, true)
	bin := BuildVPNFWD(t, t.TempDir())
	up := n.Start(v.Cli, bin, "up", "--tun", "vpnfwd0", "--wg-name", "vfpod", "--wg-config", v.ClientConf, "--provider", "natpmp", "--dns-listen", "off")
	held := waitForPort(t, n, v.Cli, bin)
	P := strconv.Itoa(held)

	// 1. The service listens on the forwarded port itself (vpnfwd gave it
	// that port). The attacker asks for it for its own port.
	stopService := tagged(t, n, v.Cli, ":"+P, "service")
	tagged(t, n, v.Cli, ":6666", "attacker")
	waitFor(t, func() bool { return whoAnswers(n, v, held) == "service" })
	if out := asNobody(n, v.Cli, "-a", P, "6666", "tcp", "60"); strings.Contains(out, "Mapped public port") {
		t.Errorf("an unprivileged program was given the port the service listens on:\n%s", out)
	}
	if r := pcpMapFrom(t, n, v.Cli, UnderCli, UnderVPN, 6666); r.result == 0 {
		t.Errorf("PCP gave the port the service listens on to another port: %+v", r)
	}
	if got := whoAnswers(n, v, held); got != "service" {
		t.Errorf("the internet reaches %q on %d after the attempts, want the service\n%s", got, held, up.Out)
	}

	// 2. The service moves to port 7000 and maps it by PCP; the attacker
	// deletes everything by NAT-PMP (map 2 0 0 0) and asks again.
	stopService()
	tagged(t, n, v.Cli, ":7000", "service")
	// vpnfwd reads the namespace's sockets at most once a second: until
	// it sees the port free, the answer is NO_RESOURCES, and an app asks
	// again (as PCP clients do).
	var r pcpResult
	waitFor(t, func() bool { r = pcpMapFrom(t, n, v.Cli, UnderCli, UnderVPN, 7000); return r.result == 0 })
	if r.external != uint16(held) {
		t.Fatalf("the service's PCP mapping: %+v", r)
	}
	waitFor(t, func() bool { return whoAnswers(n, v, held) == "service" })
	asNobody(n, v.Cli, "-a", "0", "0", "tcp", "0")
	asNobody(n, v.Cli, "-a", "0", "7000", "tcp", "0")
	if out := asNobody(n, v.Cli, "-a", "0", "6666", "tcp", "60"); strings.Contains(out, "Mapped public port") {
		t.Errorf("after NAT-PMP deletes, the attacker was given a port:\n%s", out)
	}
	if _, ms := statusMappings(n, v.Cli, bin); len(ms) != 1 || ms[0].InternalPort != 7000 || ms[0].Via != "pcp" {
		t.Errorf("the service's PCP mapping after NAT-PMP deletes: %+v", ms)
	}
	if got := whoAnswers(n, v, held); got != "service" {
		t.Errorf("the internet reaches %q after the NAT-PMP deletes, want the service", got)
	}

	// 3. Floods: one socket on the service's own address at ~1,000
	// requests a second, and datagrams from 3,000 sources (127.x.y.z) at
	// once; the service renews its mapping (PCP, same nonce) during both,
	// from its address and from one the responder has not seen, and is
	// answered each time.
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	// pmpFlood sends a NAT-PMP TCP map request for internal from one
	// socket on the service's address every tick until stop.
	pmpFlood := func(internal uint16, every time.Duration) {
		wg.Add(1)
		go n.InNS(v.Cli, func() error {
			defer wg.Done()
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(UnderCli)}, &net.UDPAddr{IP: net.ParseIP(UnderVPN), Port: 5351})
			if err != nil {
				return err
			}
			defer c.Close()
			req := make([]byte, 12)
			req[1] = 2
			binary.BigEndian.PutUint16(req[4:], internal)
			binary.BigEndian.PutUint32(req[8:], 60)
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return nil
				case <-tick.C:
					c.Write(req)
					sent.Add(1)
				}
			}
		})
	}
	pmpFlood(6666, time.Millisecond)
	// The expensive request (found in review): asking for the held port
	// itself as the internal port makes the responder look at the
	// namespace's sockets. Ten sockets, each within its own 20 a second.
	for range 10 {
		pmpFlood(uint16(held), 50*time.Millisecond)
	}
	wg.Add(1)
	go n.InNS(v.Cli, func() error {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return nil
			default:
			}
			src := netip.AddrFrom4([4]byte{127, 1, byte(i % 3000 / 250), byte(i%250 + 1)})
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: src.AsSlice()}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5351})
			if err != nil {
				continue
			}
			c.Write([]byte{0, 0})
			c.Close()
			sent.Add(1)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for sent.Load() < 4000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 6; i++ {
		start := time.Now()
		src, gw := UnderCli, UnderVPN
		if i%2 == 1 {
			src, gw = "127.0.0.1", "127.0.0.1"
		}
		r := pcpMapFrom(t, n, v.Cli, src, gw, 7000)
		if r.result != 0 || r.external != uint16(held) {
			t.Errorf("renewal %d during the floods: %+v", i, r)
		}
		// An unbounded flood can fill the responder's socket queue, so a
		// request may be lost and asked again, as NAT-PMP and PCP clients
		// do (pcpMapFrom: every 0.5 s); answered within those tries is
		// answered.
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Errorf("renewal %d during the floods took %s", i, took)
		}
	}
	if h := healthz(t, n, v); !strings.HasPrefix(h, "ok") {
		t.Errorf("/healthz during the floods: %q", h)
	}
	close(stop)
	wg.Wait()
	if sent.Load() < 4000 {
		t.Errorf("the floods sent only %d datagrams", sent.Load())
	}
	if got := whoAnswers(n, v, held); got != "service" {
		t.Errorf("the internet reaches %q after the floods", got)
	}
}
