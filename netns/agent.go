package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/tundev"
)

// agent is the process inside the namespaces. It answers vpnfwd's
// requests on fd 3 until CMD has ended or vpnfwd is gone (it dies with
// vpnfwd: PR_SET_PDEATHSIG).
type agent struct {
	c   *net.UnixConn
	dev *tundev.Device
	mu  sync.Mutex
	cmd *exec.Cmd
}

// Agent runs the agent; vpnfwd's main calls it when AgentEnv is set. It
// does not return.
func Agent() {
	if os.Getenv(AgentEnv) == agentCheck {
		os.Exit(0) // Check's probe: the namespaces were made
	}
	f := os.NewFile(3, "netns-control")
	fc, err := net.FileConn(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vpnfwd netns agent:", err)
		os.Exit(1)
	}
	f.Close()
	a := &agent{c: fc.(*net.UnixConn)}
	for {
		var rq request
		files, err := recv(a.c, &rq)
		closeAll(files)
		if err != nil {
			a.stop() // vpnfwd is done or gone: so is CMD
			os.Exit(0)
		}
		go a.handle(rq)
	}
}

func (a *agent) handle(rq request) {
	var (
		files []*os.File
		rp    = reply{ID: rq.ID}
		err   error
	)
	switch rq.Op {
	case "setup":
		files, err = a.setup(rq)
	case "dial":
		files, err = a.dial(rq)
	case "listenudp":
		files, err = a.listenUDP(rq)
	case "addresses":
		err = a.dev.SetAddresses(rq.Addresses)
	case "redirect":
		err = a.redirect(rq.Redirects)
	case "guard":
		err = nft.Guard("vpnfwd_guard", nft.OwnMark, rq.Reserved)
	case "answer":
		files, err = a.answer(rq.Port)
	case "listenlocal":
		files, err = a.listenLocal()
	case "start":
		rp.PID, err = a.start(rq)
	case "signal":
		err = a.signal(syscall.Signal(rq.Signal))
	default:
		err = fmt.Errorf("unknown request %q", rq.Op)
	}
	if err != nil {
		rp.Err = err.Error()
	}
	send(a.c, rp, files...)
	closeAll(files)
}

// setup makes the namespace: lo up, the TUN with its addresses and
// routes, resolv.conf, the DNS forwarder's sockets. It returns the TUN's
// file, then the forwarder's UDP and TCP sockets if asked for.
func (a *agent) setup(rq request) ([]*os.File, error) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("loopback up: %w", err)
	}
	a.dev, err = tundev.Open(tundev.Config{Name: rq.Tun, MTU: rq.MTU, Addresses: rq.Addresses, Routes: rq.Routes, Gateway: rq.Gateway})
	if err != nil {
		return nil, err
	}
	tf := a.dev.TUN().(*tun.NativeTun).File()
	fd, err := unix.Dup(int(tf.Fd()))
	if err != nil {
		return nil, err
	}
	files := []*os.File{os.NewFile(uintptr(fd), "tun")}
	if rq.ResolvConf != "" {
		if err := bindResolvConf(rq.ResolvConf); err != nil {
			closeAll(files)
			return nil, err
		}
	}
	if rq.DNS != "" {
		pc, err := net.ListenPacket("udp", rq.DNS)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("DNS forwarder's socket on %s: %w", rq.DNS, err)
		}
		l, err := net.Listen("tcp", rq.DNS)
		if err != nil {
			pc.Close()
			closeAll(files)
			return nil, fmt.Errorf("DNS forwarder's socket on %s (TCP): %w", rq.DNS, err)
		}
		uf, err1 := pc.(*net.UDPConn).File()
		lf, err2 := l.(*net.TCPListener).File()
		pc.Close()
		l.Close()
		if err := errors.Join(err1, err2); err != nil {
			closeAll(files)
			return nil, err
		}
		files = append(files, uf, lf)
	}
	return files, nil
}

// bindResolvConf makes this mount namespace's mounts private and puts file
// over /etc/resolv.conf in it (the host's file is untouched).
func bindResolvConf(file string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount(file, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting resolv.conf: %w", err)
	}
	return confineResolver(filepath.Dir(file))
}

// resolverSockets are the directories of host daemons that answer name
// lookups over unix sockets, outside the tunnel: systemd-resolved
// (nss-resolve's varlink socket), nscd, avahi (nss-mdns).
var resolverSockets = []string{"/run/systemd/resolve", "/run/nscd", "/var/run/nscd", "/run/avahi-daemon", "/var/run/avahi-daemon"}

// confineResolver makes CMD's name lookups go to vpnfwd's forwarder only:
// an nsswitch.conf whose hosts line is "files dns" over the host's (its
// other lines kept), and an empty read-only tmpfs over each resolver
// daemon's socket directory, for programs that ask those daemons directly.
func confineResolver(dir string) error {
	if b, err := os.ReadFile("/etc/nsswitch.conf"); err == nil {
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "hosts:") {
				lines[i] = "hosts: files dns"
			}
		}
		ns := filepath.Join(dir, "nsswitch.conf")
		if err := os.WriteFile(ns, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			return fmt.Errorf("nsswitch.conf: %w", err)
		}
		if err := unix.Mount(ns, "/etc/nsswitch.conf", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting nsswitch.conf: %w", err)
		}
	}
	for _, d := range resolverSockets {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		if err := unix.Mount("vpnfwd", d, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,mode=0555"); err != nil {
			return fmt.Errorf("masking %s (a resolver daemon's sockets): %w", d, err)
		}
	}
	return nil
}

func (a *agent) dial(rq request) ([]*os.File, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rq.TimeoutMS)*time.Millisecond)
	defer cancel()
	c, err := (&net.Dialer{Control: markOwn}).DialContext(ctx, rq.Network, rq.Address)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	f, err := c.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		return nil, err
	}
	return []*os.File{f}, nil
}

func (a *agent) listenUDP(rq request) ([]*os.File, error) {
	pc, err := (&net.ListenConfig{Control: markOwn}).ListenPacket(context.Background(), rq.Network, rq.Address)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		return nil, err
	}
	return []*os.File{f}, nil
}

// markOwn marks vpnfwd's own sockets in the namespace (nft.OwnMark),
// so that the guard's rules let exactly them reach the provider's control
// endpoints.
func markOwn(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, nft.OwnMark)
	})
	return errors.Join(err, serr)
}

// answer opens a UDP socket on 127.0.0.1:port inside and takes what CMD
// sends to that port on any other address there (nft.AnswerLocally):
// NAT-PMP and PCP requests to "the gateway" (5351), and SSDP searches
// (1900), reach vpnfwd's responders.
func (a *agent) answer(port uint16) ([]*os.File, error) {
	pc, err := (&net.ListenConfig{Control: markOwn}).ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port).String())
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	table := "vpnfwd_pmp"
	if port != 5351 {
		table = fmt.Sprintf("vpnfwd_answer_%d", port)
	}
	if err := nft.AnswerLocally(table, port, nft.OwnMark); err != nil {
		return nil, err
	}
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		return nil, err
	}
	return []*os.File{f}, nil
}

// listenLocal opens a TCP listener on an ephemeral port of every
// address inside, which only CMD's namespace reaches (nft.LoopbackOnly):
// the UPnP IGD's HTTP server.
func (a *agent) listenLocal() ([]*os.File, error) {
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if err := nft.LoopbackOnly("vpnfwd_local", uint16(l.Addr().(*net.TCPAddr).Port)); err != nil {
		return nil, err
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		return nil, err
	}
	return []*os.File{f}, nil
}

func (a *agent) redirect(rs []Redirect) error {
	var prs []nft.PortRedirect
	for _, r := range rs {
		prs = append(prs, nft.PortRedirect{Proto: r.Proto, From: r.From, To: r.To})
	}
	return nft.Redirect("vpnfwd_fwd", a.dev.Name(), prs)
}

// start runs CMD and reports its end (event "exited").
func (a *agent) start(rq request) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		return 0, errors.New("already started")
	}
	if len(rq.Argv) == 0 {
		return 0, errors.New("no command")
	}
	cmd := exec.Command(rq.Argv[0], rq.Argv[1:]...)
	cmd.Env, cmd.Dir = rq.Env, rq.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// CMD dies with the agent, which dies with vpnfwd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	switch {
	case rq.UID != nil:
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: *rq.UID, Gid: *rq.GID}
	case rq.Confine:
		id := confinedID(os.Getpid(), idsInUse())
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(id), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(id), Size: 1}}
		// Become the namespace's root (an id of its own outside): until
		// then the process would still be the host's root, unmapped inside.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	a.cmd = cmd
	go func() {
		err := cmd.Wait()
		status := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				status = 128 + int(ws.Signal())
			}
		} else if err != nil {
			status = 127
		}
		// The agent stays: the lease is released through the tunnel
		// after CMD has ended; vpnfwd closes the socket when it is done.
		send(a.c, reply{Event: "exited", Status: status})
	}()
	return cmd.Process.Pid, nil
}

func (a *agent) signal(sig syscall.Signal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return errors.New("no command running")
	}
	return a.cmd.Process.Signal(sig)
}

func (a *agent) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		a.cmd.Process.Kill()
	}
}
