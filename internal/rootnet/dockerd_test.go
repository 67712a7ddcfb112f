package rootnet

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerd is a Docker engine (Debian's docker.io) of the test's own, as
// docs/containers.md runs it: inside the test's network namespace ns (so
// `--network host` containers are there and nothing changes in the
// machine's), with the cgroupfs driver, no iptables and no bridge, its
// data, sockets and configuration in a directory of its own. Cleanup
// removes its containers, stops it by its pid file and removes its
// directory, also when the test fails.
type dockerd struct {
	t   testing.TB
	ns  string
	dir string // data root, exec root, socket, pid file, log
	cli string // Debian's docker CLI
}

func startDockerd(t *testing.T, n *Net, ns string) *dockerd {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "vpnfwd-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerd{t: t, ns: ns, dir: dir, cli: "/usr/bin/docker"}
	if _, err := os.Stat(d.cli); err != nil {
		d.cli = "docker"
	}
	t.Cleanup(d.stop)
	os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644)
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "dockerd",
		"--config-file", filepath.Join(dir, "daemon.json"),
		"-H", "unix://"+d.sock(), "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", d.pidFile(), "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", d.cgroup(),
		"--default-ulimit", "nofile=1024:1024")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait() // reaped; stop() goes by the pid file
	waitForLong(t, 60*time.Second, func() bool {
		_, err := d.do(10*time.Second, "version")
		return err == nil
	}, d.log)
	return d
}

func (d *dockerd) sock() string    { return filepath.Join(d.dir, "docker.sock") }
func (d *dockerd) cgroup() string  { return "/" + filepath.Base(d.dir) }
func (d *dockerd) pidFile() string { return filepath.Join(d.dir, "dockerd.pid") }
func (d *dockerd) log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	return string(b[max(0, len(b)-4000):])
}

// env is the environment docker, docker-compose and the README's
// commands run with: this engine, and Debian's docker first in PATH.
func (d *dockerd) env(extra ...string) []string {
	env := append(os.Environ(), "DOCKER_HOST=unix://"+d.sock(), "PATH="+filepath.Dir(d.cli)+":"+os.Getenv("PATH"))
	return append(env, extra...)
}

// run runs a program (docker, docker-compose, sh) against this engine in
// directory dir, to completion (limit at most).
func (d *dockerd) run(dir string, limit time.Duration, env []string, args ...string) (string, error) {
	c := exec.Command(args[0], args[1:]...)
	c.Dir, c.Env = dir, d.env(env...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	timer := time.AfterFunc(limit, func() {
		if c.Process != nil {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	})
	defer timer.Stop()
	out, err := c.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), err
}

func (d *dockerd) do(limit time.Duration, args ...string) (string, error) {
	return d.run("", limit, nil, append([]string{d.cli}, args...)...)
}

func (d *dockerd) must(limit time.Duration, args ...string) string {
	d.t.Helper()
	out, err := d.do(limit, args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// stop removes every container, stops dockerd by its pid file (TERM, then
// KILL), unmounts what it left and removes its directory.
func (d *dockerd) stop() {
	began := time.Now()
	if ids, err := d.do(30*time.Second, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
		d.do(time.Minute, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	for _, pidFile := range []string{d.pidFile(), filepath.Join(d.dir, "exec", "containerd", "containerd.pid")} {
		b, err := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		for deadline := time.Now().Add(20 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
	}
	// Mounts dockerd left (overlays, netns files), deepest first.
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		var mounts []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fs := strings.Fields(sc.Text()); len(fs) > 4 && strings.HasPrefix(fs[4], d.dir+"/") {
				mounts = append(mounts, fs[4])
			}
		}
		f.Close()
		for i := len(mounts) - 1; i >= 0; i-- {
			syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(d.dir); err != nil {
		d.t.Errorf("removing dockerd's directory: %v", err)
	}
	// The cgroup parent, per controller (cgroup v1) or once (v2), emptied
	// with the containers (BuildKit leaves a child "buildkit"): deepest
	// first.
	tops, _ := filepath.Glob("/sys/fs/cgroup/*" + d.cgroup())
	for _, top := range append(tops, "/sys/fs/cgroup"+d.cgroup()) {
		var dirs []string
		filepath.WalkDir(top, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			syscall.Rmdir(dirs[i])
		}
	}
	d.t.Logf("dockerd stopped and removed in %s", time.Since(began).Round(100*time.Millisecond))
}

// importDir makes image name from directory root (docker import), with
// files appended (path in the image -> file or tree on this machine).
func (d *dockerd) importDir(name, root string, files map[string]string, changes ...string) {
	d.t.Helper()
	tarball := filepath.Join(d.t.TempDir(), "root.tar")
	if out, err := exec.Command("tar", "-cf", tarball, "-C", root, ".").CombinedOutput(); err != nil {
		d.t.Fatalf("tar: %v %s", err, out)
	}
	for in, from := range files {
		args := []string{"-rf", tarball, "--exclude=*/testdata", "--exclude=usr/local/go/test", "--exclude=usr/local/go/api", "--exclude=usr/local/go/doc"}
		if st, err := os.Stat(from); err == nil && st.IsDir() {
			args = append(args, "--transform", "s|^\\.|"+in+"|", "-C", from, ".")
		} else {
			args = append(args, "--transform", "s|^"+strings.TrimPrefix(from, "/")+"|"+in+"|", "-C", "/", strings.TrimPrefix(from, "/"))
		}
		if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
			d.t.Fatalf("tar %s: %v %s", from, err, out)
		}
	}
	imp := []string{"import"}
	for _, c := range changes {
		imp = append(imp, "--change", c)
	}
	d.must(2*time.Minute, append(imp, tarball, name)...)
}

// skeleton is a root with /tmp, /bin (and a static busybox as sh and its
// applets, when busybox is set) to import.
func skeleton(t *testing.T, busybox bool) string {
	root := filepath.Join(t.TempDir(), "root")
	for _, dir := range []string{"bin", "tmp", "root", "etc/ssl/certs"} {
		os.MkdirAll(filepath.Join(root, dir), 0o755)
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	if busybox {
		for _, tool := range []string{"sh", "cat", "ls"} {
			os.Symlink("busybox", filepath.Join(root, "bin", tool))
		}
	}
	return root
}
