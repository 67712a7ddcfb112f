package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/internal/testkit"
	"github.com/vpnfwd/vpnfwd/status"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// testRoots, when set, is the CA the next vpnfwd run trusts for
// providers' HTTPS (a fake PIA).
var testRoots *x509.CertPool

func testEnv(env map[string]string) (*cliEnv, *syncBuf, *syncBuf) {
	out, errb := &syncBuf{}, &syncBuf{}
	return &cliEnv{stdout: out, stderr: errb, roots: testRoots, lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, out, errb
}

// vpnfwd runs a short command to completion.
func vpnfwd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	env, out, errb := testEnv(nil)
	code := run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

// instance is a `vpnfwd up` running in the test process.
type instance struct {
	api    string
	cancel context.CancelFunc
	done   chan int
	log    *syncBuf
	once   sync.Once
	took   time.Duration
}

func startUp(t *testing.T, srv *demo.Server, extra ...string) *instance {
	t.Helper()
	dir := t.TempDir()
	client, err := srv.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "client.conf")
	os.WriteFile(conf, []byte(demo.WGQuick(client)+"PostUp = echo pwned > "+filepath.Join(dir, "pwned")+"\n"), 0o600)
	sock := "unix:" + filepath.Join(dir, "api.sock")
	args := append([]string{"up", "--wg-config", conf, "--api", sock, "--socks5", "127.0.0.1:0", "--http-proxy", "127.0.0.1:0",
		"--state-dir", filepath.Join(dir, "state")}, extra...)
	env, _, errb := testEnv(nil)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{api: sock, cancel: cancel, done: make(chan int, 1), log: errb}
	go func() { in.done <- run(ctx, env, args) }()
	t.Cleanup(func() { in.stop(t) })
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
			t.Error("PostUp from the wg-quick file was executed")
		}
	})
	return in
}

// stop cancels the instance (as SIGINT does) and says how long it took.
// startRaw runs `vpnfwd ARGS` (which must include --api unix:PATH).
func startRaw(t *testing.T, args []string) *instance {
	t.Helper()
	var sock string
	for i, a := range args {
		if a == "--api" {
			sock = args[i+1]
		}
	}
	env, _, errb := testEnv(nil)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{api: sock, cancel: cancel, done: make(chan int, 1), log: errb}
	go func() { in.done <- run(ctx, env, args) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

func (in *instance) stop(t *testing.T) time.Duration {
	in.once.Do(func() {
		start := time.Now()
		in.cancel()
		select {
		case <-in.done:
		case <-time.After(10 * time.Second):
			t.Errorf("vpnfwd did not stop; log:\n%s", in.log)
		}
		in.took = time.Since(start)
		testkit.CheckNoLeaks(t)
	})
	return in.took
}

func (in *instance) status(t *testing.T) status.Status {
	t.Helper()
	code, out, errs := vpnfwd(t, "status", "--json", "--api", in.api)
	if code != 0 {
		t.Fatalf("status: %d %s", code, errs)
	}
	var st status.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitPort polls `vpnfwd port` until it prints a port.
func (in *instance) waitPort(t *testing.T) uint16 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		code, out, _ := vpnfwd(t, "port", "--api", in.api)
		if code == 0 {
			n, err := strconv.Atoi(strings.TrimSpace(out))
			if err != nil || n <= 0 {
				t.Fatalf("vpnfwd port printed %q", out)
			}
			return uint16(n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no port within 10 s; log:\n%s", in.log)
	return 0
}

func TestUpNATPMPEndToEnd(t *testing.T) {
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	svcAddr, svcPort := testkit.EchoService(t)
	portFile := filepath.Join(t.TempDir(), "forwarded_port")
	hookOut := filepath.Join(t.TempDir(), "hook")
	in := startUp(t, srv, "--provider", "natpmp", "--gateway", "10.2.0.1", "--forward", svcAddr,
		"--port-file", portFile, "--on-port", "sh -c 'echo {{port}} >> "+hookOut+"'")
	start := time.Now()
	port := in.waitPort(t)
	t.Logf("port %d after %s", port, time.Since(start))

	// TCP and UDP from the "internet" reach the local service.
	reply, err := testkit.TCP(testkit.PublicAddr(port), "hi")
	if err != nil || reply != "service got: hi" {
		t.Fatalf("TCP through the forwarded port: %q %v", reply, err)
	}
	reply, err = testkit.UDP(testkit.PublicAddr(port), "hu")
	if err != nil || reply != "service got: hu" {
		t.Fatalf("UDP through the forwarded port: %q %v", reply, err)
	}

	st := in.status(t)
	if st.Port.Port != int(port) || st.Tunnel.State != "up" || st.Port.PublicIP != demo.PublicIP.String() {
		t.Errorf("status %+v", st)
	}
	if st.Port.ListenPorts[0] != int(svcPort) {
		t.Errorf("generic NAT-PMP should ask for the service's port %d as internal port: %v", svcPort, st.Port.ListenPorts)
	}
	if st.Forward.TCPTotal < 1 || st.Forward.UDPPackets < 1 {
		t.Errorf("forward counters %+v", st.Forward)
	}

	// The SOCKS5 proxy reaches the internet through the tunnel.
	ip, err := testkit.SOCKS(st.Proxy.SOCKS5, "http://"+demo.WhatsMyIPName+"/")
	if err != nil || ip != demo.PublicIP.String() {
		t.Errorf("whatsmyip through SOCKS5: %q %v", ip, err)
	}

	waitFile(t, portFile, fmt.Sprint(port))
	waitFile(t, hookOut, fmt.Sprintf("%d\n", port))
	_, table, _ := vpnfwd(t, "status", "--api", in.api)
	t.Logf("vpnfwd status:\n%s", table)
	for _, want := range []string{"state", "tunnel", "port", fmt.Sprint(port), "forward", "publish", "file:", "exec: ok"} {
		if !strings.Contains(table, want) {
			t.Errorf("status table lacks %q", want)
		}
	}

	if d := in.stop(t); d > 5*time.Second {
		t.Errorf("stopping took %s", d)
	}
	if b, _ := os.ReadFile(portFile); len(b) != 0 {
		t.Errorf("port file not emptied on exit: %q", b)
	}
	if srv.Gateway.Mapped(demo.ClientAddr) != 0 {
		t.Error("mapping not released on exit")
	}
	for _, stage := range []string{"handshake complete", "port forwarded", "listening", "published"} {
		if !strings.Contains(in.log.String(), stage) {
			t.Errorf("log lacks stage %q:\n%s", stage, in.log)
		}
	}
	if !strings.Contains(in.log.String(), "PostUp is a wg-quick command") {
		t.Errorf("no warning about PostUp:\n%s", in.log)
	}
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want %q", path, b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUpRefusesWhenServiceDown(t *testing.T) {
	srv, _ := demo.Start(demo.Options{NATPMP: "proton"})
	defer srv.Close()
	in := startUp(t, srv, "--provider", "protonvpn", "--forward", "127.0.0.1:1") // nothing listens on port 1
	port := in.waitPort(t)
	c, err := net.Dial("tcp", testkit.PublicAddr(port))
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		n, rerr := c.Read(make([]byte, 1))
		c.Close()
		if n != 0 || rerr == nil {
			t.Fatalf("read %d bytes from a dead service", n)
		}
	}
	if st := in.status(t); st.Forward.TCPRefused < 1 || st.Forward.TCPTotal != 0 {
		t.Errorf("refusal not counted: %+v", st.Forward)
	}
}

func TestUpStaticHTTPProxyAndMetrics(t *testing.T) {
	srv, _ := demo.Start(demo.Options{NATPMP: "off"})
	defer srv.Close()
	in := startUp(t, srv, "--provider", "static", "--port", "40001,40002")
	port := in.waitPort(t)
	st := in.status(t)
	if port != 40001 || len(st.Port.Ports) != 2 {
		t.Fatalf("static ports: %d %v", port, st.Port.Ports)
	}
	// HTTP proxy, plain request.
	c, err := net.Dial("tcp", st.Proxy.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", demo.WhatsMyIPName, demo.WhatsMyIPName)
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), demo.PublicIP.String()) {
		t.Errorf("HTTP proxy answer: %s", b)
	}
	// HTTP proxy, CONNECT to the echo service.
	c, _ = net.Dial("tcp", st.Proxy.HTTP)
	fmt.Fprintf(c, "CONNECT %s:7 HTTP/1.1\r\nHost: %s:7\r\n\r\n", demo.EchoName, demo.EchoName)
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	if !strings.Contains(line, "200") {
		t.Fatalf("CONNECT: %q", line)
	}
	br.ReadString('\n')
	fmt.Fprintf(c, "round trip\n")
	got, _ := br.ReadString('\n')
	if got != "round trip\n" {
		t.Errorf("CONNECT echo %q", got)
	}
	c.Close()

	// SOCKS5 UDP ASSOCIATE through the tunnel.
	if err := socksUDPEcho(st.Proxy.SOCKS5); err != nil {
		t.Errorf("SOCKS5 UDP: %v", err)
	}
	// SOCKS5 to a name the tunnel's DNS does not know.
	if _, err := testkit.SOCKS(st.Proxy.SOCKS5, "http://nonexistent.test/"); err == nil {
		t.Error("unknown name resolved")
	}
}

// socksUDPEcho does a SOCKS5 UDP ASSOCIATE and an echo through it.
func socksUDPEcho(socks string) error {
	c, err := net.Dial("tcp", socks)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{5, 1, 0})
	b := make([]byte, 2)
	io.ReadFull(c, b)
	c.Write([]byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0})
	rep := make([]byte, 10)
	if _, err := io.ReadFull(c, rep); err != nil || rep[1] != 0 {
		return fmt.Errorf("associate reply % x %v", rep, err)
	}
	relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rep[4:8])), uint16(rep[8])<<8|uint16(rep[9]))
	u, err := net.Dial("udp", relay.String())
	if err != nil {
		return err
	}
	defer u.Close()
	name := demo.EchoName
	msg := append([]byte{0, 0, 0, 3, byte(len(name))}, name...)
	msg = append(msg, 0, 7)
	msg = append(msg, "udp hello"...)
	u.Write(msg)
	u.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := u.Read(buf)
	if err != nil {
		return err
	}
	if !bytes.HasSuffix(buf[:n], []byte("udp hello")) || buf[3] != 1 || !bytes.Equal(buf[4:8], demo.InternetHost.AsSlice()) {
		return fmt.Errorf("reply % x", buf[:n])
	}
	return nil
}

func TestDemo(t *testing.T) {
	code, out, errs := vpnfwd(t, "demo")
	if code != 0 || !strings.Contains(out, "demo OK") || !strings.Contains(out, "re-mapped port") {
		t.Fatalf("demo exit %d\n%s\n%s", code, out, errs)
	}
	_ = proxy.Direct
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[Interface]\nPrivateKey = abc\n"), 0o600)
	binary := filepath.Join(dir, "binary.conf")
	os.WriteFile(binary, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0xff, 0xfe}, 0o600)
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte("[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.2.0.2/32\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 0.0.0.0/0\n"), 0o600)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"up"}, 1, "no provider"},
		{[]string{"up", "--provider", "mullvad"}, 1, `unknown provider "mullvad"`},
		{[]string{"up", "--provider", "natpmp"}, 1, "--wg-config FILE"},
		{[]string{"up", "--provider", "natpmp", "--wg-config", bad}, 1, "bad.conf:2: PrivateKey: not a WireGuard key"},
		{[]string{"up", "--provider", "natpmp", "--wg-config", filepath.Join(dir, "missing.conf")}, 1, "missing.conf: no such file"},
		{[]string{"up", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"wat"}, 2, `unknown command "wat"`},
		{[]string{"port", "--api", "unix:" + filepath.Join(dir, "none.sock")}, 1, "is 'vpnfwd up' running?"},
		{[]string{"status", "--api", "127.0.0.1:1"}, 1, "no vpnfwd answering"},
		{[]string{"status", "--api", "http://127.0.0.1:1/"}, 1, "no vpnfwd answering on 127.0.0.1:1 "},
		{[]string{"status", "--api", "https://127.0.0.1:1"}, 1, "the control API speaks plain HTTP"},
		{[]string{"providers", "nope"}, 2, `no provider "nope"`},
		{[]string{"options", "up"}, 2, "options takes no arguments"},
		{[]string{"up", "--provider", "natpmp", "--wg-config", binary}, 1, "not text: is this a wg-quick file"},
		{[]string{"up", "--provider", "natpmp", "--wg-config", good, "--state-dir", binary}, 1, "is not a directory"},
		{[]string{"up", "--provider", "natpmp", "--wg-config", good, "--wg-name", "../../x"}, 1, "not a WireGuard device name"},
		{[]string{"up", "--provider", "natpmp", "--wg-config", "/dev/zero"}, 1, "/dev/zero is not a regular file"},
		{[]string{"up", "--config", "/dev/zero"}, 1, "/dev/zero is not a regular file"},
	}
	for _, tt := range tests {
		code, _, errs := vpnfwd(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
		if strings.Contains(errs, "panic") {
			t.Errorf("%v panicked", tt.args)
		}
	}
	if code, out, _ := vpnfwd(t, "version"); code != 0 || !strings.HasPrefix(out, "vpnfwd ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := vpnfwd(t, "providers"); code != 0 || !strings.Contains(out, "protonvpn") {
		t.Errorf("providers: %d %q", code, out)
	}
	if code, out, _ := vpnfwd(t, "options"); code != 0 || !strings.Contains(out, "--wg-config FILE") || !strings.Contains(out, "VPNFWD_KILLSWITCH") ||
		!strings.Contains(out, "--gateway IP") || !strings.Contains(out, "forward.max_pending_handshakes") || strings.Contains(out, "`") {
		t.Errorf("options: %d %q", code, out)
	}
}

func TestUpDeadProviderIsClearNotHung(t *testing.T) {
	srv, _ := demo.Start(demo.Options{NATPMP: "off"})
	defer srv.Close()
	in := startUp(t, srv, "--provider", "protonvpn")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(in.log.String(), "generated without NAT-PMP") {
		if time.Now().After(deadline) {
			t.Fatalf("no hint in log:\n%s", in.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, _, errs := vpnfwd(t, "port", "--api", in.api)
	if code != 1 || !strings.Contains(errs, "no forwarded port") {
		t.Errorf("port with no lease: %d %q", code, errs)
	}
	if st := in.status(t); !strings.Contains(st.Port.Error, "generated without NAT-PMP") {
		t.Errorf("status does not say why there is no port: %+v", st.Port)
	}
	if _, out, _ := vpnfwd(t, "status", "--api", in.api); !strings.Contains(out, "generated without NAT-PMP") {
		t.Errorf("status table:\n%s", out)
	}
	if d := in.stop(t); d > 5*time.Second {
		t.Errorf("stop took %s", d)
	}
}

// Proton's several ports (--ports-count 5, gluetun's
// VPN_PORT_FORWARDING_PORTS_COUNT): each public port the gateway chose
// reaches the service through the bridge, which listens on the internal
// port the gateway maps it to; the consumers get the public ports.
func TestUpSeveralProtonPorts(t *testing.T) {
	srv, err := demo.Start(demo.Options{NATPMP: "proton"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	svcAddr, _ := testkit.EchoService(t)
	portFile := filepath.Join(t.TempDir(), "forwarded_port")
	in := startUp(t, srv, "--provider", "protonvpn", "--ports-count", "5", "--forward", svcAddr, "--port-file", portFile)
	in.waitPort(t)
	var st status.Status
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st = in.status(t); len(st.Port.Ports) == 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(st.Port.Ports) != 5 {
		t.Fatalf("ports %v, want 5", st.Port.Ports)
	}
	var lines []string
	for i, p := range st.Port.Ports {
		if st.Port.ListenPorts[i] != 56789+i || p == st.Port.ListenPorts[i] {
			t.Errorf("port %d: public %d, listening on %d (want 56789+%d, and not the public one)", i, p, st.Port.ListenPorts[i], i)
		}
		if reply, err := testkit.TCP(testkit.PublicAddr(uint16(p)), "hi"); err != nil || reply != "service got: hi" {
			t.Errorf("TCP through public port %d: %q %v", p, reply, err)
		}
	}
	// In order, as gluetun writes them.
	for _, p := range slices.Sorted(slices.Values(st.Port.Ports)) {
		lines = append(lines, fmt.Sprint(p))
	}
	waitFile(t, portFile, strings.Join(lines, "\n"))
}

// gluetun's PUT /v1/vpn/status: stopped releases the port (the down hook
// runs, the port file empties, the gluetun routes say port 0 and
// "stopped"), running brings the tunnel and a port back, and the service
// is reachable again.
func TestStopAndStartTheTunnel(t *testing.T) {
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	svcAddr, _ := testkit.EchoService(t)
	dir := t.TempDir()
	portFile, hooks := filepath.Join(dir, "port"), filepath.Join(dir, "hooks")
	in := startUp(t, srv, "--provider", "natpmp", "--gateway", "10.2.0.1", "--forward", svcAddr, "--port-file", portFile,
		"--on-port", "sh -c 'echo up {{PORT}} >> "+hooks+"'", "--on-port-lost", "sh -c 'echo down {{PORT}} >> "+hooks+"'")
	port := in.waitPort(t)
	sock := strings.TrimPrefix(in.api, "unix:")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The event stream, open through the stop and the start: the session's
	// events as the API renders them, through the one pipeline.
	stream := &syncBuf{}
	evCtx, evCancel := context.WithCancel(context.Background())
	defer evCancel()
	go func() {
		req, _ := http.NewRequestWithContext(evCtx, "GET", "http://localhost/v1/events", nil)
		if resp, err := c.Do(req); err == nil {
			io.Copy(stream, resp.Body)
			resp.Body.Close()
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stream.String(), "event: state"); {
		if time.Now().After(deadline) {
			t.Fatalf("the event stream said nothing: %q", stream.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := call("PUT", "/v1/vpn/status", `{"status":"paused"}`); code != 400 || !strings.Contains(body, "possible values are: stopped, running") {
		t.Errorf("a bad status: %d %s", code, body)
	}
	if code, body := call("PUT", "/v1/vpn/status", `{"status":"stopped"}`); code != 200 || body != `{"outcome":"stopped"}`+"\n" {
		t.Fatalf("stop: %d %s", code, body)
	}
	for path, want := range map[string]string{"/v1/vpn/status": `{"status":"stopped"}`, "/v1/portforward": `{"port":0,"ports":[]}`} {
		if _, body := call("GET", path, ""); body != want+"\n" {
			t.Errorf("%s when stopped: %s", path, body)
		}
	}
	waitFile(t, portFile, "")
	waitFile(t, hooks, fmt.Sprintf("up %d\ndown %d\n", port, port))
	if _, err := testkit.TCP(testkit.PublicAddr(port), "hi"); err == nil {
		t.Error("the old port still reaches the service with the tunnel stopped")
	}
	if _, body := call("PUT", "/v1/vpn/status", `{"status":"stopped"}`); body != `{"outcome":"already stopped"}`+"\n" {
		t.Errorf("stop twice: %s", body)
	}
	if code, body := call("PUT", "/v1/vpn/status", `{"status":"running"}`); code != 200 || body != `{"outcome":"running"}`+"\n" {
		t.Fatalf("start: %d %s", code, body)
	}
	again := in.waitPort(t)
	for deadline := time.Now().Add(10 * time.Second); ; {
		reply, err := testkit.TCP(testkit.PublicAddr(again), "hi")
		if err == nil && reply == "service got: hi" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d after the start: %q %v\n%s", again, reply, err, in.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, body := call("GET", "/v1/vpn/status", ""); body != `{"status":"running"}`+"\n" {
		t.Errorf("/v1/vpn/status after the start: %s", body)
	}
	// In order: stopped, the port lost, the publishers told, the state
	// back, the new port.
	want := []string{`event: state` + "\n" + `data: {"detail":"stopped on request","state":"stopped"}`,
		"event: port\ndata: {\"provider\":\"natpmp\",\"ports\":[],", "event: publish\n",
		`data: {"detail":"started on request","state":"connecting"}`, "event: port\n", fmt.Sprintf(`"port":%d,"ports":[%d]`, again, again)}
	for deadline := time.Now().Add(5 * time.Second); ; {
		rest, missing := stream.String(), ""
		for _, w := range want {
			i := strings.Index(rest, w)
			if i < 0 {
				missing = w
				break
			}
			rest = rest[i+len(w):]
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event stream lacks %q (in order); it said:\n%s", missing, stream.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A provider that does not say the public address (static ports):
// --public-ip-url asks an IP-echo service through the tunnel, and
// gluetun's /v1/publicip/ip answers with it (consumers read an empty one
// as "VPN down").
func TestPublicIPLookedUpThroughTheTunnel(t *testing.T) {
	srv, _ := demo.Start(demo.Options{NATPMP: "off"})
	defer srv.Close()
	in := startUp(t, srv, "--provider", "static", "--port", "40001", "--public-ip-url", "http://"+demo.WhatsMyIPName+"/")
	in.waitPort(t)
	for deadline := time.Now().Add(10 * time.Second); ; {
		st := in.status(t)
		if st.PublicIP != nil && st.PublicIP.IP == demo.PublicIP.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("public IP %+v, want %s\n%s", st.PublicIP, demo.PublicIP, in.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Strangers holding local connections open (300 to the HTTP proxy, no
// request sent) get at most the cap; the rest are closed at once, and a
// remote peer still reaches the service through the forwarded port.
func TestLocalListenersCapped(t *testing.T) {
	srv, _ := demo.Start(demo.Options{})
	defer srv.Close()
	svcAddr, _ := testkit.EchoService(t)
	in := startUp(t, srv, "--provider", "natpmp", "--gateway", "10.2.0.1", "--forward", svcAddr)
	port := in.waitPort(t)
	st := in.status(t)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	closed := 0
	for range 300 {
		c, err := net.Dial("tcp", st.Proxy.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Each read at once: past the deadline a read reports the deadline
	// even on a closed connection.
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for _, c := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(deadline)
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				mu.Lock()
				closed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if closed < 300-256 {
		t.Errorf("%d of 300 idle connections closed; want at least %d (cap 256)", closed, 300-256)
	}
	if reply, err := testkit.TCP(testkit.PublicAddr(port), "hi"); err != nil || reply != "service got: hi" {
		t.Errorf("a remote peer while the proxy is at its cap: %q %v", reply, err)
	}
}

// --local-forward through the real tunnel: an HTTP client that knows
// nothing of proxies reaches the internet side's what's-my-IP (a name
// looked up through the tunnel) and sees the VPN's address; UDP goes
// both ways to the echo server; status and metrics list both.
func TestLocalForwardThroughTheTunnel(t *testing.T) {
	srv, _ := demo.Start(demo.Options{NATPMP: "off"})
	defer srv.Close()
	in := startUp(t, srv, "--provider", "static", "--port", "40001",
		"--local-forward", "127.0.0.1:0="+demo.WhatsMyIPName+":80", "--local-forward", "127.0.0.1:0="+demo.EchoName+":7/udp")
	in.waitPort(t)
	st := in.status(t)
	if len(st.LocalForwards) != 2 {
		t.Fatalf("status lists %+v", st.LocalForwards)
	}
	web, udp := st.LocalForwards[0], st.LocalForwards[1]
	if web.Protocol != "tcp" || web.To != demo.WhatsMyIPName+":80" || udp.Protocol != "udp" {
		t.Fatalf("status lists %+v", st.LocalForwards)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).Get("http://" + web.Listen + "/")
	if err != nil {
		t.Fatalf("what's-my-IP through the local forward: %v\n%s", err, in.log)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body)); got != demo.PublicIP.String() {
		t.Fatalf("what's-my-IP says %q, want the VPN's %s", got, demo.PublicIP)
	}
	c, err := net.Dial("udp", udp.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := false
	for try := 0; try < 20 && !got; try++ { // UDP: a datagram may be lost; ask again
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		c.Write([]byte("ping through"))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		got = err == nil && string(buf[:n]) == "ping through"
	}
	if !got {
		t.Fatalf("no UDP echo through the local forward\n%s", in.log)
	}
	// A copy counts bytes after its write returns, which may be after
	// the answer arrived here: wait for the counts, with a deadline.
	counted := func(st status.Status) bool {
		w, u := st.LocalForwards[0], st.LocalForwards[1]
		return w.Total == 1 && w.BytesIn > 0 && u.Total == 1 && u.BytesIn > 0
	}
	deadline := time.Now().Add(5 * time.Second)
	for st = in.status(t); !counted(st) && time.Now().Before(deadline); st = in.status(t) {
		time.Sleep(10 * time.Millisecond)
	}
	if !counted(st) {
		t.Errorf("counters %+v", st.LocalForwards)
	}
	metrics := fetchMetrics(t, in)
	if !strings.Contains(metrics, `vpnfwd_local_forward_total{listen="`+web.Listen+`",to="`+demo.WhatsMyIPName+`:80",protocol="tcp"} 1`) {
		t.Errorf("metrics lack the local forward:\n%s", metrics)
	}
}

// fetchMetrics reads the instance's /metrics over its unix socket.
func fetchMetrics(t *testing.T, in *instance) string {
	t.Helper()
	sock := strings.TrimPrefix(in.api, "unix:")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://localhost/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
