package rootnet

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// goBuildCache builds vpnfwd as the Dockerfile does (same flags, same
// target) with this test binary as GOCACHEPROG, answering from this
// machine's build cache: the result is a build cache holding what that
// build needs, for the builder image.
func goBuildCache(t *testing.T, modcache string) string {
	t.Helper()
	hostCache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	dir := filepath.Join(t.TempDir(), "gocache")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=container", "-o", filepath.Join(t.TempDir(), "vpnfwd"), "./cmd/vpnfwd")
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOPROXY=off", "GOMODCACHE="+modcache, "GOFLAGS=-modcacherw",
		"GOCACHEPROG="+self, "VPNFWD_GOCACHEPROG_OUT="+dir, "VPNFWD_GOCACHEPROG_FROM="+strings.TrimSpace(string(hostCache)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the builder image's cache: %v\n%s", err, out)
	}
	return dir
}

// dockerImages imports the test's images: the Go builder (the installed
// toolchain, the module cache and a build cache, GOPROXY=off: the engine's
// namespace has no way out), the stand-in for the official busybox image,
// and the app container's static client.
func dockerImages(t *testing.T, d *dockerd) {
	t.Helper()
	start := time.Now()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	hostMods, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	proxy, _ := exec.Command("go", "env", "GOPROXY").Output()
	modcache := filepath.Join(t.TempDir(), "mod")
	dl := exec.Command("go", "mod", "download")
	dl.Dir = repoRoot(t)
	dl.Env = append(os.Environ(), "GOMODCACHE="+modcache, "GOFLAGS=-modcacherw",
		"GOPROXY=file://"+filepath.Join(strings.TrimSpace(string(hostMods)), "cache", "download")+","+strings.TrimSpace(string(proxy)))
	if out, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	t.Logf("module cache: %s", time.Since(start).Round(100*time.Millisecond))
	gocache := goBuildCache(t, modcache)
	t.Logf("build cache: %s", time.Since(start).Round(100*time.Millisecond))
	d.importDir("vpnfwd-go-builder", skeleton(t, true), map[string]string{
		"bin/busybox":                       "/bin/busybox",
		"usr/local/go":                      strings.TrimSpace(string(goroot)),
		"etc/ssl/certs/ca-certificates.crt": "/etc/ssl/certs/ca-certificates.crt",
		"root/go/pkg/mod":                   modcache,
		"root/.cache/go-build":              gocache,
	}, "ENV PATH=/usr/local/go/bin:/bin", "ENV HOME=/root", "ENV GOPROXY=off", "ENV GOTOOLCHAIN=local")
	// The official busybox image's sh looks commands up in PATH, so that
	// a hook's `wget` is the image's /bin/wget (vpnfwd). Debian's
	// busybox-static runs its own applets first (its standalone shell:
	// `wget` would be busybox's, which refuses --retry-connrefused), so
	// the stand-in is another static POSIX shell, Debian's bash-static,
	// as /bin/busybox: the Dockerfile takes that one file.
	d.importDir("vpnfwd-busybox", skeleton(t, false), map[string]string{"bin/busybox": "/bin/bash-static"})
	ctBin := filepath.Join(t.TempDir(), "ctclient")
	goBuild := exec.Command("go", "build", "-o", ctBin, "github.com/vpnfwd/vpnfwd/internal/rootnet/ctclient")
	goBuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := goBuild.CombinedOutput(); err != nil {
		t.Fatalf("building ctclient: %v %s", err, out)
	}
	d.importDir("vpnfwd-ctclient", skeleton(t, true), map[string]string{"bin/busybox": "/bin/busybox", "ctclient": ctBin})
	t.Logf("images imported: %s", time.Since(start).Round(time.Second))
}

// readmeCommands is the README's "In a container" block made runnable
// here: the builder and busybox images are the local ones (no registry),
// the classic builder or BuildKit is chosen, BuildKit's RUN steps use the
// host network (the engine has no bridge), the container joins the
// testbed namespace (--network host: the engine's) and talks to the
// testbed's NAT-PMP gateway with the testbed's extras.
func readmeCommands(t *testing.T, extraRun string) (build, run string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "## In a container\n\n```sh\n")
	if i < 0 {
		t.Fatal("README.md has no \"## In a container\" sh block (the test runs its commands)")
	}
	block := s[i+len("## In a container\n\n```sh\n"):]
	block = block[:strings.Index(block, "```")]
	build, run, ok := strings.Cut(block, "\n")
	if !strings.HasPrefix(build, "docker build ") || !ok || !strings.HasPrefix(run, "docker run ") {
		t.Fatalf("README's container block is no longer 'docker build' then 'docker run':\n%s", block)
	}
	for _, r := range [][2]string{
		{"docker build ", "docker build --build-arg GO_IMAGE=vpnfwd-go-builder --build-arg BUSYBOX_IMAGE=vpnfwd-busybox "},
		{"-e VPNFWD_PROVIDER=protonvpn", "-e VPNFWD_PROVIDER=natpmp"},
		{" vpnfwd\n", " --network host " + extraRun + " vpnfwd\n"},
	} {
		if !strings.Contains(build+"\n"+run, r[0]) {
			t.Fatalf("README's container commands no longer have %q (the test adapts them):\n%s", r[0], block)
		}
		build, run = strings.Replace(build, r[0], r[1], 1), strings.Replace(run, r[0], r[1], 1)
	}
	return build, run
}

// gluetunHooks are the up and down commands docs/gluetun.md shows from
// gluetun's wiki, exactly.
func gluetunHooks(t *testing.T) (up, down string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "gluetun.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "- VPN_PORT_FORWARDING_UP_COMMAND=/bin/sh"); ok && up == "" {
			up = "/bin/sh" + v
		}
		if v, ok := strings.CutPrefix(l, "- VPN_PORT_FORWARDING_DOWN_COMMAND=/bin/sh"); ok && down == "" {
			down = "/bin/sh" + v
		}
	}
	if !strings.Contains(up, "--retry-connrefused") || !strings.Contains(down, "setPreferences") {
		t.Fatalf("docs/gluetun.md no longer shows gluetun's wget up and down commands: %q %q", up, down)
	}
	return up, down
}

// composeFile is examples/docker-compose.yml made runnable here: vpnfwd's
// image is the one built (not `build:`), on the engine's network (the
// testbed namespace: host mode, so no sysctls and no published ports),
// with the testbed's gateway, an outside port check and gluetun's own
// qBittorrent hooks instead of the qBittorrent publisher, and a health
// check every second (the image's command; the image says every 30 s);
// the app is the static client serving the forwarded port.
func composeFile(t *testing.T, env map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	var extra strings.Builder
	for _, k := range []string{"VPNFWD_FORWARD", "VPNFWD_PORT_CHECK", "VPNFWD_PORT_CHECK_EVERY", "VPNFWD_ON_PORT", "VPNFWD_ON_PORT_LOST"} {
		v, _ := json.Marshal(env[k]) // a YAML double-quoted scalar
		fmt.Fprintf(&extra, "      %s: %s\n", k, v)
	}
	for _, r := range [][2]string{
		{"    build: ..                    # the repository's Dockerfile (no published image yet)\n",
			"    image: vpnfwd\n    network_mode: host\n    healthcheck: {interval: 1s, retries: 2}\n"},
		{"    sysctls:\n      net.ipv6.conf.all.disable_ipv6: \"1\"   # the tunnel carries IPv4 here; IPv6 could only leak\n", ""},
		{"      VPNFWD_PROVIDER: protonvpn ", "      VPNFWD_PROVIDER: natpmp    "},
		{"      VPNFWD_QBITTORRENT: http://127.0.0.1:8080\n      VPNFWD_QBITTORRENT_USER: admin\n      VPNFWD_QBITTORRENT_PASSWORD_FILE: /config/qbittorrent-password\n", extra.String()},
		{"    ports:\n      - \"127.0.0.1:8080:8080\"              # qBittorrent's Web UI, on the host's loopback\n", ""},
		{"    image: lscr.io/linuxserver/qbittorrent:latest\n", "    image: vpnfwd-ctclient\n    command: [\"/ctclient\", \"serve\", \":7000\", \"hello-from-the-app-container\"]\n"},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("examples/docker-compose.yml no longer has %q (the test adapts it)", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

// fakeQBittorrent records the form posts to 127.0.0.1:8080 in namespace
// ns, as qBittorrent's Web API takes gluetun's hooks' setPreferences.
type fakeQBittorrent struct {
	mu    sync.Mutex
	posts []string // path and body
}

func startFakeQBittorrent(t *testing.T, n *Net, ns string) *fakeQBittorrent {
	f := &fakeQBittorrent{}
	var l net.Listener
	if err := n.InNS(ns, func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		f.mu.Lock()
		f.posts = append(f.posts, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(b))
		f.mu.Unlock()
		io.WriteString(w, "Ok.")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeQBittorrent) has(want string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.posts {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}

func (f *fakeQBittorrent) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.posts, "\n")
}

// TestDockerEngine builds the Dockerfile with Debian's Docker engine
// (docker.io 20.10, its own dockerd in the testbed's namespace, builder
// and busybox images imported: no registry) with the classic builder and
// with BuildKit, runs `demo` in the image, runs the README's `docker run`
// in a namespace testbed (real wireguard-go and miniupnpd), then brings up
// examples/docker-compose.yml's shape with Debian's docker-compose 1.29:
// vpnfwd in tun mode with the kill switch and gluetun's own qBittorrent
// up and down commands (from docs/gluetun.md, run by the image's sh and
// wget against a fake qBittorrent that records them), an app container
// with network_mode: service:vpnfwd reached from the internet on the
// forwarded port and leaving only through the tunnel; `docker inspect`
// says healthy, then unhealthy while the port is dead; `docker restart`
// keeps the port; after `docker kill` the app is cut off and a capture of
// the uplink saw nothing but WireGuard.
func TestDockerEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("long: builds an image")
	}
	n := New(t, "dockerd", "containerd", "runc", "docker-compose", "nsenter", "busybox", "bash-static", "tar",
		"wireguard-go", "wg", "nft", "miniupnpd", "dnsmasq", "tcpdump", "socat")
	start := time.Now()
	v := NewVPN(t, n, true)
	d := startDockerd(t, n, v.Cli)
	dockerImages(t, d)
	self, _ := os.Executable()
	startWhatsMyIP(t, n, v.Inet)
	startResolver(n, v, GatewayIP)
	n.Start(v.Inet, "env", "VPNFWD_HELPER=portcheck", "VPNFWD_ADDR=:9000", "VPNFWD_TARGET="+PublicAddr, self)
	qbt := startFakeQBittorrent(t, n, v.Cli)
	up, down := gluetunHooks(t)

	// The README's commands, in a directory holding the wg-quick file.
	work := t.TempDir()
	conf, _ := os.ReadFile(v.ClientConf)
	os.WriteFile(filepath.Join(work, "wg0.conf"), conf, 0o600)
	build, run := readmeCommands(t, "-e VPNFWD_FORWARD=0.0.0.0:7000")
	for _, b := range []struct {
		name string
		env  []string
		cmd  string
	}{
		{"classic builder", []string{"DOCKER_BUILDKIT=0"}, build},
		{"BuildKit", []string{"DOCKER_BUILDKIT=1"}, strings.Replace(build, "docker build ", "docker build --network host ", 1)},
	} {
		began := time.Now()
		if out, err := d.run(repoRoot(t), 5*time.Minute, b.env, "sh", "-c", b.cmd); err != nil {
			t.Fatalf("%s: %v\n%s", b.name, err, out)
		}
		t.Logf("%s: built in %s", b.name, time.Since(began).Round(time.Second))
		if out, err := d.do(2*time.Minute, "run", "--rm", "--network", "none", "vpnfwd", "demo"); err != nil || !strings.Contains(out, "demo OK") {
			t.Fatalf("demo in the image (%s): %v\n%s", b.name, err, out)
		}
	}
	size := strings.TrimSpace(d.must(time.Minute, "image", "inspect", "--format", "{{.Size}}", "vpnfwd"))
	shSize := strings.TrimSpace(d.must(time.Minute, "image", "inspect", "--format", "{{.Size}}", "vpnfwd-busybox"))
	t.Logf("image: %s bytes, of which %s the busybox stage's /bin/busybox (here the stand-in)", size, shSize)
	if hc := d.must(time.Minute, "image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", "vpnfwd"); !strings.Contains(hc, "/vpnfwd") {
		t.Errorf("the image has no health check: %s", hc)
	}
	portOf := func(ctr string) int {
		out, err := d.do(20*time.Second, "exec", ctr, "/vpnfwd", "port")
		if err != nil {
			return 0
		}
		p, _ := strconv.Atoi(strings.TrimSpace(out))
		return p
	}
	logs := func() string { out, _ := d.do(time.Minute, "logs", "vpnfwd"); return out }

	// The README's docker run: the port comes, vpnfwd stops cleanly.
	if out, err := d.run(work, 2*time.Minute, nil, "sh", "-c", run); err != nil {
		t.Fatalf("the README's docker run: %v\n%s", err, out)
	}
	waitForLong(t, 30*time.Second, func() bool { return portOf("vpnfwd") != 0 }, logs)
	if out, err := d.do(20*time.Second, "exec", "vpnfwd", "/vpnfwd", "status"); err != nil {
		t.Errorf("docker exec vpnfwd /vpnfwd status: %v\n%s", err, out)
	}
	d.must(time.Minute, "stop", "-t", "10", "vpnfwd")
	d.must(time.Minute, "rm", "vpnfwd")

	// The compose file's shape with docker-compose.
	project := t.TempDir()
	os.MkdirAll(filepath.Join(project, "config"), 0o755)
	os.WriteFile(filepath.Join(project, "config", "wg0.conf"), conf, 0o600)
	compose := filepath.Join(project, "docker-compose.yml")
	os.WriteFile(compose, []byte(composeFile(t, map[string]string{
		"VPNFWD_FORWARD": "0.0.0.0:7000", "VPNFWD_PORT_CHECK": "http://" + InetAddr + ":9000/{port}", "VPNFWD_PORT_CHECK_EVERY": "1m",
		"VPNFWD_ON_PORT": up, "VPNFWD_ON_PORT_LOST": down,
	})), 0o644)
	composeCmd := func(limit time.Duration, args ...string) (string, error) {
		return d.run(project, limit, nil, append([]string{"docker-compose", "-p", "vpnfwdtest", "-f", compose}, args...)...)
	}
	t.Cleanup(func() {
		began := time.Now()
		composeCmd(2*time.Minute, "down", "-v", "-t", "0")
		t.Logf("docker-compose down: %s", time.Since(began).Round(100*time.Millisecond))
	})
	cap := startCapture(t, n, v.Cli, "eth0")
	if out, err := composeCmd(3*time.Minute, "up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s\n%s", err, out, logs())
	} else {
		t.Logf("docker-compose up -d:\n%s", out)
	}
	health := func() string {
		out, _ := d.do(20*time.Second, "inspect", "--format", "{{.State.Health.Status}}", "vpnfwd")
		return strings.TrimSpace(out)
	}
	var port int
	waitForLong(t, 30*time.Second, func() bool { port = portOf("vpnfwd"); return port != 0 }, logs)

	// gluetun's up command ran in the image: sh, then wget, posted the
	// port to qBittorrent's setPreferences.
	waitForLong(t, 30*time.Second, func() bool {
		return qbt.has(fmt.Sprintf(`POST /api/v2/app/setPreferences application/x-www-form-urlencoded json={"listen_port":%d,"current_network_interface":"vpnfwd0","random_port":false,"upnp":false}`, port))
	}, func() string { return "posts:\n" + qbt.String() + "\n" + logs() })

	// The internet reaches the app container on the forwarded port; it
	// leaves with the VPN's address and looks names up through the tunnel.
	if got, err := n.ExecUntil(v.Inet, "", "hello-from-the-app-container", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, port)); err != nil {
		t.Fatalf("the internet reaching the app container on %d: %q %v\n%s", port, got, err, logs())
	}
	app := "vpnfwdtest_qbittorrent_1"
	if out, err := d.do(30*time.Second, "exec", app, "/ctclient", "get", "http://"+InetAddr+":8080/"); err != nil || !strings.Contains(out, PublicAddr) {
		t.Errorf("the app container's egress: %q %v (want the VPN's %s)", out, err, PublicAddr)
	}
	if out, err := d.do(30*time.Second, "exec", app, "/ctclient", "lookup", "vpn.test"); err != nil || !strings.Contains(out, InetAddr) {
		resolv, _ := d.do(10*time.Second, "exec", app, "cat", "/etc/resolv.conf")
		t.Errorf("the app container's lookup of vpn.test: %q %v (resolv.conf %q)", out, err, resolv)
	}

	// docker inspect: healthy while the port is held and verified, then
	// unhealthy once the outside check finds it closed twice.
	waitForLong(t, 30*time.Second, func() bool { return health() == "healthy" }, func() string { return health() + "\n" + logs() })
	n.Must(v.Server, "nft", "add", "table", "inet", "broken")
	n.Must(v.Server, "nft", "add", "chain", "inet", "broken", "pre", "{ type filter hook prerouting priority -300; policy accept; }")
	n.Must(v.Server, "nft", "add", "rule", "inet", "broken", "pre", "iifname", "pub", "tcp", "dport", fmt.Sprint(port), "drop")
	v.Blackout(true)
	time.Sleep(4 * time.Second) // the outage's length: vpnfwd checks from outside after it
	v.Blackout(false)
	waitForLong(t, 60*time.Second, func() bool { return health() == "unhealthy" }, func() string { return health() + "\n" + logs() })
	n.Must(v.Server, "nft", "delete", "table", "inet", "broken")

	// docker restart keeps the port (the state volume); the down command
	// told qBittorrent at the stop.
	d.must(time.Minute, "restart", "-t", "10", "vpnfwd")
	if !qbt.has(`json={"listen_port":0,"current_network_interface":"lo"}`) {
		t.Errorf("gluetun's down command did not reach qBittorrent at the stop:\n%s", qbt)
	}
	var again int
	waitForLong(t, 30*time.Second, func() bool { again = portOf("vpnfwd"); return again != 0 }, logs)
	if again != port {
		t.Errorf("after docker restart the port is %d, was %d", again, port)
	}
	if got, err := n.ExecUntil(v.Inet, "", "hello-from-the-app-container", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, again)); err != nil {
		t.Errorf("the app container after vpnfwd's restart: %q %v\n%s", got, err, logs())
	}

	// docker kill: the app is cut off, and nothing but WireGuard ever left
	// the client's link.
	d.must(time.Minute, "kill", "vpnfwd")
	// restart: unless-stopped does not bring it back (docker kill counts as
	// stopped by hand), so the kill switch alone holds the app in.
	if st := strings.TrimSpace(d.must(time.Minute, "inspect", "--format", "{{.State.Status}} restarts={{.RestartCount}}", "vpnfwd")); st != "exited restarts=0" {
		t.Errorf("vpnfwd after docker kill: %s (want exited, not restarted)", st)
	}
	if out, err := d.do(30*time.Second, "exec", app, "/ctclient", "get", "http://"+InetAddr+":8080/"); err == nil {
		t.Errorf("after docker kill the app container got out: %q", out)
	}
	if l := leaks(cap.packets(t)); len(l) > 0 {
		t.Errorf("%d packets left the client's link besides WireGuard:\n%s", len(l), strings.Join(l[:min(len(l), 20)], "\n"))
	}
	t.Logf("whole test: %s", time.Since(start).Round(time.Second))
}
