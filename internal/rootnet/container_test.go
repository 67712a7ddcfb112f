package rootnet

import (
	elfpkg "debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// podman is Debian's podman with the settings docs/containers.md gives
// (runc, cgroupfs, ulimits the machine allows) in a containers.conf of
// the test's own, and storage in the test's own directories: the
// machine's /etc/containers and /var/lib/containers are not touched.
type podman struct {
	t               testing.TB
	conf, root, run string
}

func newPodman(t testing.TB) *podman {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "vpnfwd-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, conf: filepath.Join(dir, "containers.conf"), root: filepath.Join(dir, "storage"), run: filepath.Join(dir, "run")}
	os.WriteFile(p.conf, []byte(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`), 0o644)
	t.Cleanup(func() {
		p.cmd("rm", "-af", "-t", "0").Run()
		p.cmd("rmi", "-af").Run()
		os.RemoveAll(dir)
	})
	return p
}

func (p *podman) cmd(args ...string) *exec.Cmd {
	c := exec.Command("podman", append([]string{"--root", p.root, "--runroot", p.run}, args...)...)
	c.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	return c
}

// do runs podman to completion (limit at most) and returns its output.
func (p *podman) do(limit time.Duration, args ...string) (string, error) {
	return p.doIn("", limit, args...)
}

// doIn is do with podman in network namespace ns ("": this one), as a
// pod on hostNetwork needs for `podman exec` into it.
func (p *podman) doIn(ns string, limit time.Duration, args ...string) (string, error) {
	c := p.cmd(args...)
	if ns != "" {
		c.Args = append([]string{"nsenter", "--net=/run/netns/" + ns}, c.Args...)
		c.Path, _ = exec.LookPath("nsenter")
	}
	timer := time.AfterFunc(limit, func() {
		if c.Process != nil {
			c.Process.Kill()
		}
	})
	defer timer.Stop()
	out, err := c.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), err
}

func (p *podman) must(limit time.Duration, args ...string) string {
	p.t.Helper()
	out, err := p.do(limit, args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// importImage makes an image from files (path in the image -> path on
// this machine, a file or a directory) and a static busybox as /bin/sh.
// arch, when not "", labels the image with another architecture than
// this machine's (its files stay this machine's).
func (p *podman) importImage(name, arch string, files map[string]string, changes ...string) {
	p.t.Helper()
	dir := p.t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"bin", "tmp", "root", "etc/ssl/certs"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	for _, tool := range []string{"sh", "cat", "ls"} {
		os.Symlink("busybox", filepath.Join(root, "bin", tool))
	}
	tarball := filepath.Join(dir, "root.tar")
	args := []string{"-cf", tarball, "-C", root, "."}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		p.t.Fatalf("tar: %v %s", err, out)
	}
	files["bin/busybox"] = "/bin/busybox"
	for in, from := range files {
		// Each file or tree is appended under its path in the image.
		args := []string{"-rf", tarball, "--exclude=*/testdata", "--exclude=usr/local/go/test", "--exclude=usr/local/go/api", "--exclude=usr/local/go/doc",
			"--transform", "s|^" + strings.TrimPrefix(from, "/") + "|" + in + "|", "-C", "/", strings.TrimPrefix(from, "/")}
		if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
			p.t.Fatalf("tar %s: %v %s", from, err, out)
		}
	}
	imp := []string{"import"}
	if arch != "" {
		imp = append(imp, "--arch", arch)
	}
	for _, c := range append([]string{"ENV PATH=/usr/local/go/bin:/bin"}, changes...) {
		imp = append(imp, "--change", c)
	}
	p.must(2*time.Minute, append(imp, tarball, name)...)
	if arch == "" {
		p.must(time.Minute, "run", "--rm", "--network", "none", name, "sh", "-c", "true") // the image runs
	}
}

// repoRoot is the repository's top directory (the Dockerfile's).
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// goCacheMounts are podman's -v arguments mounting this machine's Go
// module and build caches into an image build.
func goCacheMounts(t testing.TB) []string {
	t.Helper()
	var mounts []string
	for _, c := range []struct{ env, in string }{{"GOMODCACHE", "/root/go/pkg/mod"}, {"GOCACHE", "/root/.cache/go-build"}} {
		dir, err := exec.Command("go", "env", c.env).Output()
		if err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, "-v", strings.TrimSpace(string(dir))+":"+c.in)
	}
	return mounts
}

// buildImages makes the test's images: the Go builder from the installed
// toolchain, vpnfwd's from the repository's Dockerfile (GO_IMAGE), and
// the static client standing in for an app.
func buildImages(t *testing.T, pm *podman) {
	t.Helper()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	builder := map[string]string{
		"usr/local/go":                      strings.TrimSpace(string(goroot)),
		"etc/ssl/certs/ca-certificates.crt": "/etc/ssl/certs/ca-certificates.crt",
	}
	pm.importImage("localhost/vpnfwd-go-builder", "", builder, "ENV HOME=/root")
	// The same toolchain labelled arm64, for the arm64 build: Podman
	// ignores FROM --platform=$BUILDPLATFORM (buildah issue 3712) and
	// looks for a builder of the target platform, where docker buildx
	// takes the build machine's. Its files are this machine's, so it
	// cross-compiles as buildx's builder does, with no emulation.
	pm.importImage("localhost/vpnfwd-go-builder-cross", "arm64", builder, "ENV HOME=/root")
	// The busybox stage's image (BUSYBOX_IMAGE), for each platform.
	pm.importImage("localhost/vpnfwd-busybox", "", map[string]string{})
	pm.importImage("localhost/vpnfwd-busybox-cross", "arm64", map[string]string{})
	t.Logf("builder image: %s", time.Since(start).Round(time.Second))
	start = time.Now()
	build := []string{"build", "--format", "docker", "--network", "host", "--build-arg", "GO_IMAGE=localhost/vpnfwd-go-builder", "--build-arg", "BUSYBOX_IMAGE=localhost/vpnfwd-busybox"}
	pm.must(10*time.Minute, append(append(build, goCacheMounts(t)...), "-t", "localhost/vpnfwd:test", repoRoot(t))...)
	t.Logf("vpnfwd image built: %s", time.Since(start).Round(time.Second))
	size := pm.must(time.Minute, "image", "inspect", "--format", "{{.Size}}", "localhost/vpnfwd:test")
	if mb, _ := strconv.Atoi(strings.TrimSpace(size)); mb == 0 || mb > 40<<20 {
		t.Errorf("image size %s bytes", size)
	}
	if out := pm.must(time.Minute, "image", "inspect", "--format", "{{json .HealthCheck}}", "localhost/vpnfwd:test"); !strings.Contains(out, "vpnfwd") {
		t.Errorf("the image has no health check (built without --format docker?): %s", out)
	}

	// The second container's image: a static client, no libc.
	ctDir := t.TempDir()
	ctBin := filepath.Join(ctDir, "ctclient")
	goBuild := exec.Command("go", "build", "-o", ctBin, "github.com/vpnfwd/vpnfwd/internal/rootnet/ctclient")
	goBuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := goBuild.CombinedOutput(); err != nil {
		t.Fatalf("building ctclient: %v %s", err, out)
	}
	pm.importImage("localhost/vpnfwd-ctclient", "", map[string]string{"ctclient": ctBin})
}

// TestContainerImage builds the repository's Dockerfile with Podman (its
// builder image made here from the installed Go, as a machine without a
// registry does: GO_IMAGE) and runs it for real: `demo` in the image, then
// the compose file's shape in a namespace testbed with a real wireguard-go
// server and miniupnpd. vpnfwd's container is configured by environment
// alone (tun mode, kill switch, DNS forwarder, a wg-quick file mounted
// read-only, the state volume); a second container in its namespace
// serves on the forwarded port (reached from the internet side), leaves
// with the VPN's address and looks names up through the tunnel; the
// image's health check is healthy while the port is held and verified,
// unhealthy while it is known dead; a restart keeps the port (state
// volume); kill -9 leaves the second container cut off, not leaking.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("long: builds an image")
	}
	n := New(t, "podman", "runc", "busybox", "tar", "wireguard-go", "wg", "nft", "miniupnpd", "dnsmasq", "tcpdump", "socat")
	pm := newPodman(t)
	buildImages(t, pm)

	// demo in the image.
	if out, err := pm.do(2*time.Minute, "run", "--rm", "--network", "none", "localhost/vpnfwd:test", "demo"); err != nil || !strings.Contains(out, "demo OK") {
		t.Fatalf("demo in the image: %v\n%s", err, out)
	}

	// The same Dockerfile for a 64-bit ARM board: the binary is
	// cross-compiled by the builder of this machine's platform, and the
	// final stage runs nothing, so no emulation is needed.
	build := []string{"build", "--format", "docker", "--network", "host", "--platform", "linux/arm64",
		"--build-arg", "GO_IMAGE=localhost/vpnfwd-go-builder-cross", "--build-arg", "BUSYBOX_IMAGE=localhost/vpnfwd-busybox-cross"}
	pm.must(10*time.Minute, append(append(build, goCacheMounts(t)...), "-t", "localhost/vpnfwd:arm64", repoRoot(t))...)
	if arch := strings.TrimSpace(pm.must(time.Minute, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", "localhost/vpnfwd:arm64")); arch != "linux/arm64" {
		t.Errorf("the arm64 image says %s", arch)
	}
	ctr := strings.TrimSpace(pm.must(time.Minute, "create", "--platform", "linux/arm64", "localhost/vpnfwd:arm64"))
	elf := filepath.Join(t.TempDir(), "vpnfwd-arm64")
	pm.must(time.Minute, "cp", ctr+":/vpnfwd", elf)
	pm.must(time.Minute, "rm", ctr)
	if f, err := elfpkg.Open(elf); err != nil || f.Machine != elfpkg.EM_AARCH64 {
		t.Errorf("the arm64 image's /vpnfwd is not an AArch64 binary: %v", err)
	} else {
		f.Close()
	}

	// The testbed: vpnfwd's container in the client host's namespace.
	v := NewVPN(t, n, true)
	startWhatsMyIP(t, n, v.Inet)
	startResolver(n, v, GatewayIP)
	self, _ := os.Executable()
	n.Start(v.Inet, "env", "VPNFWD_HELPER=portcheck", "VPNFWD_ADDR=:9000", "VPNFWD_TARGET="+PublicAddr, self)
	cfg := t.TempDir()
	conf, _ := os.ReadFile(v.ClientConf)
	os.WriteFile(filepath.Join(cfg, "wg0.conf"), conf, 0o600)
	state := t.TempDir()
	runVPNFWD := func() {
		t.Helper()
		pm.must(time.Minute, "run", "-d", "--name", "vpnfwd", "--network", "ns:/run/netns/"+v.Cli,
			"--cap-add", "NET_ADMIN", "--device", "/dev/net/tun",
			"-v", cfg+":/config:ro", "-v", state+":/var/lib/vpnfwd",
			"-e", "VPNFWD_PROVIDER=natpmp", "-e", "VPNFWD_WG_CONFIG=/config/wg0.conf", "-e", "VPNFWD_TUN=vpnfwd0",
			"-e", "VPNFWD_KILLSWITCH=true", "-e", "VPNFWD_DNS_RESOLV_CONF=true", "-e", "VPNFWD_FORWARD=0.0.0.0:7000",
			"-e", "VPNFWD_PORT_CHECK=http://"+InetAddr+":9000/{port}", "-e", "VPNFWD_PORT_CHECK_EVERY=1m",
			"localhost/vpnfwd:test")
	}
	logs := func() string { out, _ := pm.do(time.Minute, "logs", "vpnfwd"); return out }
	portOf := func() int {
		out, err := pm.do(20*time.Second, "exec", "vpnfwd", "/vpnfwd", "port")
		if err != nil {
			return 0
		}
		p, _ := strconv.Atoi(strings.TrimSpace(out))
		return p
	}
	cap := startCapture(t, n, v.Cli, "eth0")
	runVPNFWD()
	var port int
	waitForLong(t, 30*time.Second, func() bool { port = portOf(); return port != 0 }, logs)
	pm.must(time.Minute, "run", "-d", "--name", "app", "--network", "container:vpnfwd", "localhost/vpnfwd-ctclient",
		"/ctclient", "serve", ":7000", "hello-from-the-app-container")

	// The internet reaches the app container on the forwarded port.
	if got, err := n.ExecUntil(v.Inet, "", "hello-from-the-app-container", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, port)); err != nil {
		t.Fatalf("the internet reaching the app container on %d: %q %v\n%s", port, got, err, logs())
	}
	// It leaves with the VPN's address, and looks names up through the
	// tunnel (vpnfwd's forwarder, via the shared resolv.conf).
	if out, err := pm.do(30*time.Second, "exec", "app", "/ctclient", "get", "http://"+InetAddr+":8080/"); err != nil || !strings.Contains(out, PublicAddr) {
		t.Errorf("the app container's egress: %q %v (want the VPN's %s)", out, err, PublicAddr)
	}
	if out, err := pm.do(30*time.Second, "exec", "app", "/ctclient", "lookup", "vpn.test"); err != nil || !strings.Contains(out, InetAddr) {
		resolv, _ := pm.do(10*time.Second, "exec", "app", "cat", "/etc/resolv.conf")
		t.Errorf("the app container's lookup of vpn.test: %q %v (resolv.conf %q)", out, err, resolv)
	}

	// The image's health check: healthy while the port is held and
	// verified (the outside check said open).
	waitForLong(t, 30*time.Second, func() bool {
		_, err := pm.do(30*time.Second, "healthcheck", "run", "vpnfwd")
		return err == nil
	}, logs)
	// The provider stops forwarding while its gateway still says yes: the
	// outside check finds it closed twice after the next outage, the port
	// is dead, and the health check fails.
	n.Must(v.Server, "nft", "add", "table", "inet", "broken")
	n.Must(v.Server, "nft", "add", "chain", "inet", "broken", "pre", "{ type filter hook prerouting priority -300; policy accept; }")
	n.Must(v.Server, "nft", "add", "rule", "inet", "broken", "pre", "iifname", "pub", "tcp", "dport", fmt.Sprint(port), "drop")
	v.Blackout(true)
	time.Sleep(4 * time.Second) // the outage's length: vpnfwd checks from outside after it
	v.Blackout(false)
	waitForLong(t, 60*time.Second, func() bool {
		_, err := pm.do(30*time.Second, "healthcheck", "run", "vpnfwd")
		return err != nil
	}, logs)
	n.Must(v.Server, "nft", "delete", "table", "inet", "broken")

	// A restart keeps the port (the state volume; vpnfwd released it at
	// stop and asks for it again).
	pm.must(time.Minute, "restart", "-t", "10", "vpnfwd")
	var again int
	waitForLong(t, 30*time.Second, func() bool { again = portOf(); return again != 0 }, logs)
	if again != port {
		t.Errorf("after a restart the port is %d, was %d", again, port)
	}
	if got, err := n.ExecUntil(v.Inet, "", "hello-from-the-app-container", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, again)); err != nil {
		t.Errorf("the app container after vpnfwd's restart: %q %v\n%s", got, err, logs())
	}

	// kill -9 of vpnfwd's container: the app container is cut off, and
	// nothing but WireGuard ever left the host's link.
	pm.must(time.Minute, "kill", "-s", "KILL", "vpnfwd")
	if out, err := pm.do(30*time.Second, "exec", "app", "/ctclient", "get", "http://"+InetAddr+":8080/"); err == nil {
		t.Errorf("after kill -9 the app container got out: %q", out)
	}
	if l := leaks(cap.packets(t)); len(l) > 0 {
		t.Errorf("%d packets left the client's link besides WireGuard:\n%s", len(l), strings.Join(l[:min(len(l), 20)], "\n"))
	}
	pm.do(time.Minute, "rm", "-f", "-t", "0", "app")
	pm.do(time.Minute, "rm", "-f", "-t", "0", "vpnfwd")
	bin := BuildVPNFWD(t, t.TempDir())
	n.Must(v.Cli, bin, "killswitch", "off")
}

// kubeManifest is examples/kubernetes/seedbox.yaml made runnable here:
// the images are the ones built in the test (no registry: qBittorrent's
// image is the static client serving the Web UI's port), the pod uses the
// testbed namespace it is started in (hostNetwork, as podman kube play
// needs under nsenter; without the container port, which podman would
// publish), the Secret holds the test's wg-quick file, and
// vpnfwd redirects the forwarded port to that port (--forward) since the
// stand-in cannot take the port from vpnfwd's publisher. The Secret's
// files come from a directory (Podman 4.3 mangles Secret volumes).
func kubeManifest(t *testing.T, wgConf string) string {
	t.Helper()
	secrets := t.TempDir()
	os.WriteFile(filepath.Join(secrets, "wg0.conf"), []byte(wgConf), 0o400)
	os.WriteFile(filepath.Join(secrets, "qbittorrent-password"), []byte("change-me"), 0o400)
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "kubernetes", "seedbox.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	var conf strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(wgConf), "\n") {
		conf.WriteString("    " + l + "\n")
	}
	for _, r := range [][2]string{
		{"    # your provider's wg-quick file (ProtonVPN: with NAT-PMP port forwarding on)\n", conf.String()},
		{"image: vpnfwd:latest", "image: localhost/vpnfwd:test"},
		{"              value: protonvpn", "              value: natpmp"},
		// Podman 4.3's kube play ignores a Secret's stringData and mounts
		// its data still base64-encoded: the same files come from a
		// directory in the Secret volume's place.
		{"          secret:\n            secretName: vpnfwd\n            defaultMode: 0400\n            optional: false        # (Podman 4.3's kube play needs it said)\n",
			"          hostPath:\n            path: " + secrets + "\n            type: Directory\n"},
		{"          image: lscr.io/linuxserver/qbittorrent:latest\n", "          image: localhost/vpnfwd-ctclient\n          command: [\"/ctclient\", \"serve\", \":8080\", \"hello-from-the-pod\"]\n"},
		{"          env:\n            - name: VPNFWD_PROVIDER", "          env:\n            - name: VPNFWD_FORWARD\n              value: \"0.0.0.0:8080\"\n            - name: VPNFWD_PROVIDER"},
		{"      terminationGracePeriodSeconds: 15\n", "      terminationGracePeriodSeconds: 15\n      hostNetwork: true\n"},
		// Podman publishes containerPort on the host, which it refuses
		// on the host's network (Kubernetes does not publish it).
		{"          ports:\n            - name: webui\n              containerPort: 8080\n", ""},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("examples/kubernetes/seedbox.yaml no longer has %q (the test adapts it)", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

// TestKubernetesPod runs examples/kubernetes/seedbox.yaml with `podman
// kube play` in the namespace testbed (podman under nsenter, the pod on
// hostNetwork: that namespace): the Secret, the state volume, vpnfwd
// beside the app in one pod in tun mode with the kill switch, its probes'
// commands, the app reached from the internet on the forwarded port and
// leaving with the VPN's address. Podman runs the two as ordinary
// containers of one pod (it does not start native sidecars: init
// containers with restartPolicy Always).
func TestKubernetesPod(t *testing.T) {
	if testing.Short() {
		t.Skip("long: builds an image")
	}
	n := New(t, "podman", "runc", "catatonit", "busybox", "tar", "nsenter", "wireguard-go", "wg", "nft", "miniupnpd", "socat")
	pm := newPodman(t)
	buildImages(t, pm)
	v := NewVPN(t, n, true)
	startWhatsMyIP(t, n, v.Inet)
	conf, _ := os.ReadFile(v.ClientConf)
	manifest := filepath.Join(t.TempDir(), "seedbox.yaml")
	os.WriteFile(manifest, []byte(kubeManifest(t, string(conf))), 0o600)
	inNS := func(limit time.Duration, args ...string) (string, error) { return pm.doIn(v.Cli, limit, args...) }
	if out, err := inNS(2*time.Minute, "kube", "play", manifest); err != nil {
		t.Fatalf("kube play: %v\n%s", err, out)
	}
	t.Cleanup(func() { inNS(time.Minute, "kube", "down", manifest) })
	// On the host's network (hostNetwork), a container has no network
	// namespace of its own: podman exec must run in the testbed's too.
	const vpnfwdCt, appCt = "seedbox-pod-0-vpnfwd", "seedbox-pod-0-qbittorrent"
	logs := func() string { out, _ := pm.do(time.Minute, "logs", vpnfwdCt); return out }
	var port int
	var lastErr error
	waitForLong(t, 45*time.Second, func() bool {
		out, err := inNS(20*time.Second, "exec", vpnfwdCt, "/vpnfwd", "port") // the readiness probe's command
		if lastErr = err; err != nil {
			return false
		}
		port, _ = strconv.Atoi(strings.TrimSpace(out))
		return port != 0
	}, func() string { return fmt.Sprintf("%v\n%s", lastErr, logs()) })
	if _, err := inNS(20*time.Second, "exec", vpnfwdCt, "/vpnfwd", "status"); err != nil { // the liveness probe's
		t.Errorf("the liveness probe's command: %v", err)
	}
	if got, err := n.ExecUntil(v.Inet, "", "hello-from-the-pod", "socat", "-T2", "-", fmt.Sprintf("TCP:%s:%d", PublicAddr, port)); err != nil {
		t.Fatalf("the internet reaching the pod's app on %d: %q %v\n%s", port, got, err, logs())
	}
	if out, err := inNS(30*time.Second, "exec", appCt, "/ctclient", "get", "http://"+InetAddr+":8080/"); err != nil || !strings.Contains(out, PublicAddr) {
		t.Errorf("the pod's app leaves with %q %v, want the VPN's %s", out, err, PublicAddr)
	}
	if out, _ := pm.do(time.Minute, "volume", "inspect", "--format", "{{.Mountpoint}}", "vpnfwd-state"); true {
		entries, _ := os.ReadDir(strings.TrimSpace(out))
		if len(entries) == 0 {
			t.Errorf("nothing in the state volume %q", out)
		}
	}
	// As Kubernetes stops a pod: SIGTERM, then SIGKILL after the grace
	// period (podman's kube down alone does not wait).
	if out, err := inNS(time.Minute, "pod", "stop", "-t", "15", "seedbox-pod-0"); err != nil {
		t.Errorf("pod stop: %v\n%s", err, out)
	}
	if !strings.Contains(logs(), "msg=stopped") {
		t.Errorf("vpnfwd did not stop cleanly:\n%s", logs())
	}
	if out, err := inNS(2*time.Minute, "kube", "down", manifest); err != nil {
		t.Errorf("kube down: %v\n%s", err, out)
	}
	if out, _ := n.Exec(v.Cli, "nft", "list", "tables"); strings.Contains(out, "vpnfwd") {
		t.Errorf("vpnfwd's tables left after the pod stopped (it exits cleanly on SIGTERM):\n%s", out)
	}
}
