package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/vpnfwd/vpnfwd/nft"
)

// Config describes the namespace.
type Config struct {
	Tun       string         // the TUN's name inside (e.g. tun0)
	MTU       int            // 0: 1420
	Addresses []netip.Prefix // the tunnel's addresses
	Routes    []netip.Prefix // the peers' allowed IPs
	// Gateway, when set, is named in the IPv4 default route, so that
	// CMD's NAT-PMP and PCP clients find a gateway to ask.
	Gateway netip.Addr
	// DNS names the tunnel's resolver for resolv.conf inside: the
	// forwarder's sockets listen there (e.g. 127.0.0.1:53).
	DNS netip.AddrPort
	// Stderr receives the agent's own errors.
	Stderr *os.File
}

// Sandbox is the running namespace, seen from vpnfwd. It is a data plane:
// TUN for wireguard-go, DialContext / ListenUDP / Resolve for vpnfwd's own
// traffic through the tunnel (sockets made inside by the agent).
type Sandbox struct {
	cfg    Config
	cmd    *exec.Cmd
	c      *net.UnixConn
	tun    tun.Device
	DNSUDP net.PacketConn // the forwarder's sockets inside (nil if no DNS)
	DNSTCP net.Listener
	tmp    string

	mu     sync.Mutex
	nextID int
	wait   map[int]chan result
	addrs  []netip.Prefix
	exited chan int // CMD's status
	gone   chan struct{}
}

type result struct {
	r     reply
	files []*os.File
}

// Start starts the agent in new namespaces and sets them up. Without
// root it makes a user namespace too, mapping the caller's uid and gid to
// root inside (as `unshare -r`): CMD then runs as the caller.
func Start(cfg Config) (*Sandbox, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1420
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "netns"), os.NewFile(uintptr(pair[1]), "netns-agent")
	defer theirs.Close()
	fc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		fc.Close()
		return nil, err
	}
	s := &Sandbox{cfg: cfg, c: fc.(*net.UnixConn), wait: map[int]chan result{}, exited: make(chan int, 1), gone: make(chan struct{})}
	s.cmd = exec.Command(self)
	// The agent needs nothing of vpnfwd's environment (which may hold
	// secrets, and which CMD could read in the agent's /proc entry).
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), AgentEnv + "=1"}
	s.cmd.ExtraFiles = []*os.File{theirs}
	s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	s.cmd.SysProcAttr = attr
	if err := startDumpable(s.cmd); err != nil {
		fc.Close()
		return nil, fmt.Errorf("exec: starting the namespace: %w%s", err, hint(err))
	}
	go s.read()
	if err := s.setup(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// hint says what usually stops a namespace from being made.
func hint(err error) string {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EINVAL) {
		return " (unprivileged user namespaces may be off: sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces > 0; in a container, run as root with CAP_SYS_ADMIN or use up --tun)"
	}
	return ""
}

func (s *Sandbox) setup() error {
	var err error
	rq := request{Op: "setup", Tun: s.cfg.Tun, MTU: s.cfg.MTU, Addresses: s.cfg.Addresses, Routes: s.cfg.Routes, Gateway: s.cfg.Gateway}
	if s.cfg.DNS.IsValid() {
		s.tmp, err = os.MkdirTemp("", "vpnfwd-exec-")
		if err != nil {
			return err
		}
		rq.ResolvConf = s.tmp + "/resolv.conf"
		text := "# vpnfwd exec: the DNS forwarder, through the tunnel\nnameserver " + s.cfg.DNS.Addr().String() + "\n"
		if err := os.WriteFile(rq.ResolvConf, []byte(text), 0o644); err != nil {
			return err
		}
		rq.DNS = s.cfg.DNS.String()
	}
	res, err := s.call(context.Background(), rq)
	if err != nil {
		return fmt.Errorf("exec: setting up the namespace: %w", err)
	}
	want := 1
	if rq.DNS != "" {
		want = 3
	}
	if len(res.files) != want {
		closeAll(res.files)
		return fmt.Errorf("exec: the agent sent %d files, want %d", len(res.files), want)
	}
	tfd, err := unix.Dup(int(res.files[0].Fd()))
	if err != nil {
		closeAll(res.files)
		return err
	}
	t, name, err := tun.CreateUnmonitoredTUNFromFD(tfd)
	if err != nil {
		closeAll(res.files)
		return fmt.Errorf("exec: the TUN %s: %w", name, err)
	}
	s.tun = fixedMTU{t, s.cfg.MTU}
	res.files[0].Close()
	if want == 3 {
		s.DNSUDP, err = net.FilePacketConn(res.files[1])
		if err == nil {
			s.DNSTCP, err = net.FileListener(res.files[2])
		}
		closeAll(res.files[1:])
		if err != nil {
			return err
		}
	}
	s.addrs = s.cfg.Addresses
	return nil
}

// read demultiplexes the agent's replies and events.
func (s *Sandbox) read() {
	defer close(s.gone)
	for {
		var rp reply
		files, err := recv(s.c, &rp)
		if err != nil {
			s.mu.Lock()
			for id, ch := range s.wait {
				ch <- result{r: reply{Err: "the namespace's agent is gone"}}
				delete(s.wait, id)
			}
			s.mu.Unlock()
			return
		}
		if rp.Event == "exited" {
			s.exited <- rp.Status
			continue
		}
		s.mu.Lock()
		ch := s.wait[rp.ID]
		delete(s.wait, rp.ID)
		s.mu.Unlock()
		if ch == nil {
			closeAll(files)
			continue
		}
		ch <- result{r: rp, files: files}
	}
}

func (s *Sandbox) call(ctx context.Context, rq request) (result, error) {
	ch := make(chan result, 1)
	s.mu.Lock()
	s.nextID++
	rq.ID = s.nextID
	s.wait[rq.ID] = ch
	s.mu.Unlock()
	if err := send(s.c, rq); err != nil {
		s.mu.Lock()
		delete(s.wait, rq.ID)
		s.mu.Unlock()
		return result{}, err
	}
	select {
	case res := <-ch:
		if res.r.Err != "" {
			closeAll(res.files)
			return result{}, errors.New(res.r.Err)
		}
		return res, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.wait, rq.ID)
		s.mu.Unlock()
		return result{}, ctx.Err()
	}
}

// TUN is the TUN for wireguard-go (its file descriptor, in vpnfwd).
func (s *Sandbox) TUN() tun.Device { return s.tun }

// DialContext dials addr from inside the namespace: through the tunnel.
func (s *Sandbox) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	res, err := s.call(ctx, request{Op: "dial", Network: network, Address: addr, TimeoutMS: timeout.Milliseconds() + 1})
	if err != nil {
		return nil, fmt.Errorf("through the tunnel: %w", err)
	}
	defer closeAll(res.files)
	if len(res.files) != 1 {
		return nil, errors.New("through the tunnel: no socket from the agent")
	}
	return net.FileConn(res.files[0])
}

// ListenUDP opens a UDP socket inside the namespace.
func (s *Sandbox) ListenUDP(ap netip.AddrPort) (net.PacketConn, error) {
	network := "udp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		network = "udp6"
	}
	res, err := s.call(context.Background(), request{Op: "listenudp", Network: network, Address: ap.String()})
	if err != nil {
		return nil, err
	}
	defer closeAll(res.files)
	if len(res.files) != 1 {
		return nil, errors.New("no socket from the agent")
	}
	return net.FilePacketConn(res.files[0])
}

// Answer opens a UDP socket on 127.0.0.1:port inside and has every
// datagram CMD sends to that port elsewhere delivered to it instead (the
// NAT-PMP/PCP responder's socket).
func (s *Sandbox) Answer(ctx context.Context, port uint16) (net.PacketConn, error) {
	res, err := s.call(ctx, request{Op: "answer", Port: port})
	if err != nil {
		return nil, err
	}
	defer closeAll(res.files)
	if len(res.files) != 1 {
		return nil, errors.New("no socket from the agent")
	}
	return net.FilePacketConn(res.files[0])
}

// ListenLocal opens a TCP listener on an ephemeral port of every address
// inside, which only programs inside reach (the UPnP IGD's HTTP server).
func (s *Sandbox) ListenLocal(ctx context.Context) (net.Listener, error) {
	res, err := s.call(ctx, request{Op: "listenlocal"})
	if err != nil {
		return nil, err
	}
	defer closeAll(res.files)
	if len(res.files) != 1 {
		return nil, errors.New("no listener from the agent")
	}
	return net.FileListener(res.files[0])
}

// NetProc is the /proc directory of the namespace's socket tables (the
// agent's /proc/PID/net), for telling which ports programs inside use.
func (s *Sandbox) NetProc() string {
	return fmt.Sprintf("/proc/%d/net", s.cmd.Process.Pid)
}

// Resolve looks host up with the tunnel's DNS server, through the tunnel.
func (s *Sandbox) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return s.DialContext(ctx, network, s.cfg.DNS.String())
	}}
	return r.LookupNetIP(ctx, "ip", host)
}

// Addresses are the TUN's tunnel addresses.
func (s *Sandbox) Addresses() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.Prefix(nil), s.addrs...)
}

// SetAddresses moves the TUN inside to new addresses.
func (s *Sandbox) SetAddresses(addrs []netip.Prefix) error {
	if _, err := s.call(context.Background(), request{Op: "addresses", Addresses: addrs}); err != nil {
		return err
	}
	s.mu.Lock()
	s.addrs = append([]netip.Prefix(nil), addrs...)
	s.mu.Unlock()
	return nil
}

// Guard makes the provider's control endpoints reachable from vpnfwd's
// own sockets only, inside the namespace (nft.Guard; nil removes
// the rules).
func (s *Sandbox) Guard(ctx context.Context, rs []nft.Reserved) error {
	_, err := s.call(ctx, request{Op: "guard", Reserved: rs})
	return err
}

// Redirect sends the forwarded ports on to other ports inside (replacing
// what was there).
func (s *Sandbox) Redirect(ctx context.Context, rs []Redirect) error {
	_, err := s.call(ctx, request{Op: "redirect", Redirects: rs})
	return err
}

// Run starts CMD inside with env (uid/gid, when set, as root only) and
// returns its pid; Exited reports its status. Run as root with no uid,
// CMD is root of a user namespace of its own, mapped to an id of its own
// outside (confined.go):
// root's look inside, no privilege outside it (no entering other
// namespaces, no mounts, no routes). Unprivileged, the agent's own user
// namespace already holds CMD.
func (s *Sandbox) Run(ctx context.Context, argv, env []string, dir string, uid, gid *uint32) (int, error) {
	confine := uid == nil && os.Geteuid() == 0
	res, err := s.call(ctx, request{Op: "start", Argv: argv, Env: env, Dir: dir, UID: uid, GID: gid, Confine: confine})
	if err != nil {
		return 0, err
	}
	return res.r.PID, nil
}

// Exited delivers CMD's exit status (128+N if signal N ended it).
func (s *Sandbox) Exited() <-chan int { return s.exited }

// Gone is closed when the agent is gone.
func (s *Sandbox) Gone() <-chan struct{} { return s.gone }

// Signal sends sig to CMD.
func (s *Sandbox) Signal(sig syscall.Signal) error {
	_, err := s.call(context.Background(), request{Op: "signal", Signal: int(sig)})
	return err
}

// Close ends the agent (and CMD with it, if still running) and closes
// the sockets; the TUN is closed by wireguard-go's device.
func (s *Sandbox) Close() error {
	s.c.Close()
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
	if s.DNSUDP != nil {
		s.DNSUDP.Close()
		s.DNSTCP.Close()
	}
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
	return nil
}

// fixedMTU reports the MTU the agent set: the TUN's own MTU() asks the
// kernel by name in vpnfwd's namespace, where the TUN is not.
type fixedMTU struct {
	tun.Device
	mtu int
}

func (f fixedMTU) MTU() (int, error) { return f.mtu, nil }

// startDumpable starts cmd with vpnfwd dumpable for that moment: vpnfwd
// makes itself non-dumpable to keep its /proc/PID/environ from others
// (secret.Protect), but a non-dumpable parent cannot write its new child's
// uid_map. The agent starts before CMD exists.
func startDumpable(cmd *exec.Cmd) error {
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err == nil && d == 0 {
		unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
		defer unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	}
	return cmd.Start()
}
