package publish

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests against the real clients from Debian (qbittorrent-nox 4.5,
// transmission-daemon 3.00, deluged + deluge-web 2.0). They skip when a
// client is not installed; .ci/run installs them.

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func need(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (see .ci/run)", b)
		}
	}
}

// daemonProc runs a client in the foreground until stopped.
type daemonProc struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	out  *strings.Builder
}

func (p *daemonProc) start() {
	p.t.Helper()
	p.out = &strings.Builder{}
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

func (p *daemonProc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.cmd.Wait()
	}
}

func waitHTTP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never came up", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runClient runs a publisher for c and returns a function that waits for the
// client to report want.
func runClient(t *testing.T, c *Client) (*harness, func(want int)) {
	d := newHarness(nil, c)
	t.Cleanup(d.Stop)
	return d, func(want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			got, settled, err := c.c.Current(cctx)
			ccancel()
			res := d.Results()[0]
			if err == nil && got == want && settled && res.OK && len(res.Ports) > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: port %d settled=%v err=%v, last result %+v; want %d", c.Name(), got, settled, err, res, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// exercise is the common scenario: the client comes up after the first
// event, takes two port changes, is killed and restarted with a stale
// port, and gets the port back from the periodic check.
func exercise(t *testing.T, c *Client, start, stop func(), makeStale func()) {
	d, waitPort := runClient(t, c)
	p1, p2 := 20000+freePort(t)%20000, 40000+freePort(t)%20000
	d.Send(portEv("port", 0)) // never pushed
	d.Send(portEv("port", uint16(p1)))
	time.Sleep(300 * time.Millisecond) // the client is not up yet: vpnfwd waits and retries
	start()
	waitPort(p1)
	d.Send(portEv("port", uint16(p2)))
	waitPort(p2)
	d.Send(portEv("lost")) // leaves the client alone
	d.Send(portEv("reconnect", uint16(p2)))
	waitPort(p2)
	stop()
	makeStale()
	start()
	waitPort(p2)
}

func TestRealQBittorrent(t *testing.T) {
	need(t, "qbittorrent-nox")
	dir := t.TempDir()
	web := freePort(t)
	conf := filepath.Join(dir, "qBittorrent", "config", "qBittorrent.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	writeConf := func(port int) {
		os.WriteFile(conf, []byte(fmt.Sprintf("[LegalNotice]\nAccepted=true\n[BitTorrent]\nSession\\Port=%d\n[Preferences]\nConnection\\PortRangeMin=%d\nConnection\\UPnP=true\nWebUI\\Port=%d\n", port, port, web)), 0o644)
	}
	writeConf(freePort(t))
	p := &daemonProc{t: t, args: []string{"qbittorrent-nox", "--profile=" + dir}}
	defer p.kill()
	url := fmt.Sprintf("http://127.0.0.1:%d", web)
	c := NewQBittorrent(ClientConfig{URL: url, Username: "admin", Password: "adminadmin", CheckEvery: 300 * time.Millisecond},
		QBittorrentOptions{MultiConnections: true, SOCKS5: "127.0.0.1:1080", Interface: "lo"})
	exercise(t, c, func() { p.start(); waitHTTP(t, url[7:]) }, p.kill, func() { writeConf(freePort(t)) })

	// The extras took, in 4.5's types; bound to an interface (here lo, as
	// the test's peers come over loopback; vpnfwd gives the tunnel's).
	q := c.c.(*qbittorrent)
	prefs, err := q.prefs(context.Background())
	if err != nil || prefs["enable_multi_connections_from_same_ip"] != true || prefs["proxy_type"] != float64(2) ||
		prefs["proxy_port"] != float64(1080) || prefs["upnp"] != false || prefs["proxy_peer_connections"] != false ||
		prefs["current_network_interface"] != "lo" {
		t.Errorf("extras: %v %v", err, prefs)
	}
	// With the proxy set, peers still get in: libtorrent listens on the
	// port (it stops while peer connections are proxied).
	port, _, err := q.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qBittorrent with vpnfwd's proxy set does not accept peers on %d: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A wrong password: a clear error and a long back-off, not a ban loop.
	bad := NewQBittorrent(ClientConfig{URL: url, Username: "admin", Password: "wrong"}, QBittorrentOptions{})
	err = bad.Publish(context.Background(), portEv("port", 50000))
	var ra *RetryAfter
	if !errors.As(err, &ra) || ra.Delay < time.Minute || !strings.Contains(err.Error(), "refused the username or password") {
		t.Fatalf("wrong password: %v", err)
	}
	// No credentials at all: no guess (it would spend a failed login), but
	// what to set.
	if _, _, err := NewQBittorrent(ClientConfig{URL: url}, QBittorrentOptions{}).c.Current(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "--qbittorrent-password-file") {
		t.Errorf("with no credentials given: %v", err)
	}
	// Still not banned: the good client logs in again from scratch.
	fresh := NewQBittorrent(ClientConfig{URL: url, Username: "admin", Password: "adminadmin"}, QBittorrentOptions{})
	if _, _, err := fresh.c.Current(context.Background()); err != nil {
		t.Errorf("after one wrong password: %v", err)
	}
}

func TestRealTransmission(t *testing.T) {
	need(t, "transmission-daemon")
	dir := t.TempDir()
	rpc := freePort(t)
	peer := freePort(t)
	p := &daemonProc{t: t, args: []string{"transmission-daemon", "-f", "-g", dir, "-p", fmt.Sprint(rpc), "-P", fmt.Sprint(peer),
		"-t", "-u", "vpnfwd", "-v", "s3cret", "--log-error"}}
	defer p.kill()
	url := fmt.Sprintf("http://127.0.0.1:%d", rpc)
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	c := NewTransmission(ClientConfig{URL: url, Username: "vpnfwd", PasswordFile: pwFile, CheckEvery: 300 * time.Millisecond})
	stale := func() {
		// Transmission saved the port on exit; put a stale one back.
		f := filepath.Join(dir, "settings.json")
		b, _ := os.ReadFile(f)
		s := string(b)
		if i := strings.Index(s, `"peer-port": `); i >= 0 {
			j := i + len(`"peer-port": `)
			k := strings.IndexAny(s[j:], ",\n")
			s = s[:j] + "51413" + s[j+k:]
		}
		os.WriteFile(f, []byte(s), 0o600)
	}
	exercise(t, c, func() { p.start(); waitHTTP(t, url[7:]) }, p.kill, stale)

	bad := NewTransmission(ClientConfig{URL: url, Username: "vpnfwd", Password: "nope"})
	err := bad.Publish(context.Background(), portEv("port", 50000))
	if err == nil || !strings.Contains(err.Error(), "refused the username or password") {
		t.Errorf("wrong password: %v", err)
	}
}

func TestRealDeluge(t *testing.T) {
	need(t, "deluged", "deluge-web")
	dir := t.TempDir()
	daemonPort, web := freePort(t), freePort(t)
	os.WriteFile(filepath.Join(dir, "auth"), []byte("localclient:localpw:10\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "hostlist.conf"), []byte(fmt.Sprintf(`{"file": 3, "format": 1}{"hosts": [["0123456789abcdef0123456789abcdef", "127.0.0.1", %d, "localclient", "localpw"]]}`, daemonPort)), 0o600)
	d := &daemonProc{t: t, args: []string{"deluged", "-d", "-c", dir, "-p", fmt.Sprint(daemonPort), "-L", "error"}}
	w := &daemonProc{t: t, args: []string{"deluge-web", "-d", "-c", dir, "-p", fmt.Sprint(web), "-i", "127.0.0.1", "-L", "error"}}
	defer d.kill()
	defer w.kill()
	url := fmt.Sprintf("http://127.0.0.1:%d", web)
	c := NewDeluge(ClientConfig{URL: url, Password: "deluge", CheckEvery: 300 * time.Millisecond})
	start := func() {
		d.start()
		waitHTTP(t, fmt.Sprintf("127.0.0.1:%d", daemonPort))
		w.start()
		waitHTTP(t, url[7:])
	}
	stop := func() { w.kill(); d.kill() }
	exercise(t, c, start, stop, func() {})

	bad := NewDeluge(ClientConfig{URL: url, Password: "nope"})
	err := bad.Publish(context.Background(), portEv("port", 50000))
	if err == nil || !strings.Contains(err.Error(), "refused the password") {
		t.Errorf("wrong password: %v", err)
	}
}
