package leakcheck

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/status"
)

// The checks against fakes of what they probe: a what's-my-IP server, a
// SOCKS5 "tunnel" that exits from another address, resolvers that answer,
// refuse or stay silent, an outside port checker. The verdict rules are
// the package's (checks.go); the fakes answer as the real peers do.

// whatsMyIP answers each request with the address it came from, as
// ipify or ifconfig.co do.
func whatsMyIP(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintln(w, host)
	}))
	t.Cleanup(s.Close)
	return s
}

// socksTunnel is a SOCKS5 server (RFC 1928: no authentication, CONNECT)
// standing in for vpnfwd's proxy: it connects from exit (another address
// than the host's, as the tunnel's exit is) and resolves the names it is
// given itself (names map; the tunnel's DNS).
func socksTunnel(t *testing.T, exit string, names map[string]string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 262)
				if _, err := io.ReadFull(c, buf[:2]); err != nil {
					return
				}
				io.ReadFull(c, buf[:buf[1]])
				c.Write([]byte{5, 0})
				if _, err := io.ReadFull(c, buf[:4]); err != nil {
					return
				}
				var host string
				switch buf[3] {
				case 1:
					io.ReadFull(c, buf[:4])
					host = net.IP(buf[:4]).String()
				case 3:
					io.ReadFull(c, buf[:1])
					n := int(buf[0])
					io.ReadFull(c, buf[:n])
					host = string(buf[:n])
				default:
					return
				}
				io.ReadFull(c, buf[:2])
				port := binary.BigEndian.Uint16(buf[:2])
				if a, ok := names[host]; ok {
					host = a
				}
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(exit)}, Timeout: 2 * time.Second}
				up, err := d.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
				if err != nil {
					c.Write([]byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0})
					return
				}
				defer up.Close()
				c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return l.Addr().String()
}

func netstackStatus(socks string) status.Status {
	var st status.Status
	st.Tunnel.Mode, st.Proxy.SOCKS5 = "netstack", socks
	return st
}

func TestExitIP(t *testing.T) {
	ip := whatsMyIP(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(ip.URL, "http://"))
	socks := socksTunnel(t, "127.0.0.2", map[string]string{"whatsmyip.invalid": "127.0.0.1"})
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		st     status.Status
		url    string
		result string
		detail string
	}{
		// The host reaches the server directly: apps that ignore the
		// proxy leave from the host's own address.
		{"direct gets out", netstackStatus(socks), ip.URL, "leak", "tunnel exits as 127.0.0.2, but a direct request got out as 127.0.0.1"},
		// Only the tunnel resolves the name: the direct attempt fails,
		// but not because something here stopped it.
		{"direct fails unblocked", netstackStatus(socks), "http://whatsmyip.invalid:" + port, "error", "the direct attempt failed in a way that proves nothing"},
		{"no proxy", netstackStatus(""), ip.URL, "error", "SOCKS5 proxy is off"},
		// A tunnel that exits with the host's own address hides nothing.
		{"same address", netstackStatus(socksTunnel(t, "127.0.0.1", nil)), ip.URL, "leak", "both exit as 127.0.0.1"},
	} {
		r, _ := checkExitIP(ctx, c.st, c.url)
		if r.Result != c.result || !strings.Contains(r.Detail, c.detail) {
			t.Errorf("%s: %s %q, want %s %q", c.name, r.Result, r.Detail, c.result, c.detail)
		}
	}
}

// resolver answers every query on a UDP socket (silent: reads, never
// answers, as a query the kill switch drops looks from here).
func resolver(t *testing.T, silent bool) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			if !silent {
				b[2] |= 0x80 // QR: a response, REFUSED or not, is an answer
				pc.WriteTo(b[:n], from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestDNS(t *testing.T) {
	closed, _ := net.ListenPacket("udp", "127.0.0.1:0")
	refusing := closed.LocalAddr().String()
	closed.Close() // ICMP port unreachable: the query left the host
	ctx := context.Background()
	st := netstackStatus("")
	for _, c := range []struct {
		name    string
		servers []string
		result  string
		detail  string
	}{
		{"answered", []string{resolver(t, false)}, "leak", "answered a query sent outside the tunnel"},
		{"refused there", []string{refusing}, "leak", "left the host (it was refused there)"},
		{"silent", []string{resolver(t, true)}, "pass", "no answer outside the tunnel"},
		{"none", nil, "skip", "no resolver"},
		{"bad address", []string{"not an address"}, "error", "not an address"},
	} {
		r := checkDNS(ctx, st, c.servers)
		if r.Result != c.result || !strings.Contains(r.Detail, c.detail) {
			t.Errorf("%s: %s %q, want %s %q", c.name, r.Result, r.Detail, c.result, c.detail)
		}
	}
}

func TestIPv6(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here")
	}
	defer l.Close()
	ctx := context.Background()
	st := netstackStatus("")
	if r := checkIPv6(ctx, st, l.Addr().String()); r.Result != "leak" || !strings.Contains(r.Detail, "got through") {
		t.Errorf("open: %+v", r)
	}
	addr := l.Addr().String()
	l.Close()
	if r := checkIPv6(ctx, st, addr); r.Result != "leak" || !strings.Contains(r.Detail, "refused there") {
		t.Errorf("refused: %+v", r)
	}
}

// checker is an outside port checker answering what the test says.
func checker(t *testing.T, answers ...string) (string, *int) {
	asked := new(int)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[min(*asked, len(answers)-1)]
		*asked++
		fmt.Fprint(w, a)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/{port}", asked
}

func TestPort(t *testing.T) {
	socks := socksTunnel(t, "127.0.0.2", nil)
	ctx := context.Background()
	st := netstackStatus(socks)
	open, _ := checker(t, "1")
	if r := checkPort(ctx, st, open, 40001); r.Result != "pass" || !strings.Contains(r.Detail, "port 40001 is reachable") {
		t.Errorf("open: %+v", r)
	}
	// One "closed" is not proof: asked again a second later.
	flaky, asked := checker(t, "0", "1")
	if r := checkPort(ctx, st, flaky, 40001); r.Result != "pass" || *asked != 2 {
		t.Errorf("closed then open: %+v, asked %d", r, *asked)
	}
	shut, _ := checker(t, "0")
	if r := checkPort(ctx, st, shut, 40001); r.Result != "fail" || !strings.Contains(r.Detail, "NOT reachable") {
		t.Errorf("closed twice: %+v", r)
	}
	garbled, _ := checker(t, "<html>rate limited</html>")
	if r := checkPort(ctx, st, garbled, 40001); r.Result != "error" {
		t.Errorf("no usable answer: %+v", r)
	}
	if r := checkPort(ctx, st, "", 40001); r.Result != "skip" {
		t.Errorf("off: %+v", r)
	}
	if r := checkPort(ctx, st, open, 0); r.Result != "error" || !strings.Contains(r.Detail, "no forwarded port") {
		t.Errorf("no port: %+v", r)
	}
}

// Run: exec mode is not this namespace's business; a status that cannot
// be read is one error, not a run of misleading checks.
func TestRun(t *testing.T) {
	ctx := context.Background()
	rs := Run(ctx, func(context.Context) (status.Status, error) {
		var st status.Status
		st.Tunnel.Mode, st.Tunnel.Device = "exec", "tun0"
		return st, nil
	}, Options{})
	if len(rs) != 1 || rs[0].Result != "skip" || !strings.Contains(rs[0].Detail, "holds only lo and the TUN tun0") {
		t.Errorf("exec: %+v", rs)
	}
	rs = Run(ctx, func(context.Context) (status.Status, error) { return status.Status{}, errors.New("connection refused") }, Options{})
	if len(rs) != 1 || rs[0].Result != "error" || rs[0].Check != "status" {
		t.Errorf("no status: %+v", rs)
	}
}

// Print: the exit code is the worst verdict (leak or fail 1, error 2,
// else 0); the table ends with the verdict, JSON carries the same.
func TestPrint(t *testing.T) {
	for _, c := range []struct {
		results []string
		code    int
		verdict string
	}{
		{[]string{"pass", "skip"}, 0, "no leak found"},
		{[]string{"pass", "error"}, 2, "some checks could not run"},
		{[]string{"error", "leak"}, 1, "LEAK or failure found"},
		{[]string{"fail", "pass"}, 1, "LEAK or failure found"},
	} {
		var rs []Result
		for i, r := range c.results {
			rs = append(rs, Result{Check: fmt.Sprint("c", i), Result: r, Detail: "d"})
		}
		var text, js bytes.Buffer
		if code := Print(&text, rs, false); code != c.code || !strings.Contains(text.String(), "leak-check: "+c.verdict) {
			t.Errorf("%v: %d\n%s", c.results, code, text.String())
		}
		var out struct {
			Exit   int
			Checks []Result
		}
		if code := Print(&js, rs, true); code != c.code || json.Unmarshal(js.Bytes(), &out) != nil || out.Exit != c.code || len(out.Checks) != len(rs) {
			t.Errorf("%v JSON: %d %s", c.results, code, js.String())
		}
	}
}
