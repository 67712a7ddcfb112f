// Package daemon is one vpnfwd run: it builds the data plane (netstack,
// kernel TUN or exec's namespace), the WireGuard device, the provider, the
// bridge, proxies, DNS forwarder, control API, publishers and kill switch
// in order, wires them around a session.Session, which owns the tunnel's
// health and the lease, and shuts everything down in order. cmd/vpnfwd
// parses flags and calls New and Run.
package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vpnfwd/vpnfwd/api"
	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/connlimit"
	"github.com/vpnfwd/vpnfwd/failover"
	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/killswitch"
	"github.com/vpnfwd/vpnfwd/portcheck"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/publish"
	"github.com/vpnfwd/vpnfwd/session"
	"github.com/vpnfwd/vpnfwd/state"
	"github.com/vpnfwd/vpnfwd/status"
	"github.com/vpnfwd/vpnfwd/tunnel"
	"github.com/vpnfwd/vpnfwd/wg"
)

// Daemon is one running vpnfwd: tunnel, provider, bridge, proxies, API and
// publishers, wired together around a session.Session, which owns the
// tunnel's health and the lease. New builds it; Run runs it until ctx
// ends and shuts it down (releasing the lease) within a few seconds.
type Daemon struct {
	cfg   *config.Config
	log   *slog.Logger
	plane plane // netstack, tun mode's TUN or exec's namespace
	dev   *wg.Device
	// pubs are the publishers, each around its own subscription to the
	// session's events.
	pubs  []*publish.Publisher
	prov  provider.Provider
	caps  provider.Caps // prov's optional interfaces
	sess  *session.Session
	since time.Time

	socksL, httpL, apiL net.Listener
	ownL                net.Listener // the owner's socket (ownsocket.go)
	// locals are the local forwards (--local-forward), open from New.
	locals   []*forward.Local
	apiToken string
	apiRoles []api.Role
	// ipLookup queues --public-ip-url lookups; publicIP is the last answer.
	ipLookup      chan struct{}
	publicIP      atomic.Pointer[status.PublicIP]
	proxyAuth     forward.Credentials
	uapi          *wg.UAPI
	dnsUDP        net.PacketConn
	dnsTCP        net.Listener
	oldResolvConf []byte // put back at exit

	target target // --forward

	ks      *killswitch.KillSwitch
	store   state.Dir
	roots   *x509.CertPool
	version string
}

// Options are the seams tests and the demo use.
type Options struct {
	Log *slog.Logger
	// Resolve overrides endpoint resolution.
	Resolve wg.Resolver
	// Session tunes liveness checks and recovery; its Sinks hear every
	// event once the data plane has applied it, each on a goroutine of
	// its own.
	Session session.Options
	// Consumers are extra publishers beside the configured ones.
	Consumers []publish.Consumer
	// Roots is trusted for providers' HTTPS instead of the system store.
	Roots *x509.CertPool
	// Exec makes exec's data plane: a TUN in a namespace of its own.
	Exec bool
	// Version is what status reports as vpnfwd's version.
	Version string
}

// New builds a run from cfg: the listeners (a busy port fails here), the
// kill switch, the provider (PIA logs in and registers its key now), the
// data plane and the WireGuard device. Run runs it; on error everything
// built is closed.
func New(ctx context.Context, cfg *config.Config, o Options) (*Daemon, error) {
	log := o.Log
	d := &Daemon{cfg: cfg, log: log, since: time.Now(), roots: o.Roots, version: o.Version}
	for _, n := range cfg.Notes {
		log.Info(n)
	}
	if cfg.PublicIPURL != "" {
		d.ipLookup = make(chan struct{}, 1)
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	info, ok := cfg.Providers.Lookup(cfg.Provider.Name)
	if !ok {
		return nil, fmt.Errorf("unknown provider %q; 'vpnfwd providers' lists them", cfg.Provider.Name)
	}
	d.store = state.Dir{Path: cfg.StateDir, Warn: log.With("component", "state").Warn}
	if err := d.readSettings(o.Exec); err != nil {
		return nil, err
	}
	if err := d.listen(); err != nil {
		d.closeAll()
		return nil, err
	}
	d.warnDescriptorLimit()
	wopts, direct, err := d.aroundTunnel(info, o.Resolve)
	if err != nil {
		d.closeAll()
		return nil, err
	}
	if err := d.startProvider(ctx, info, direct); err != nil {
		d.closeAll()
		return nil, fmt.Errorf("provider %s: %w", info.Name, err)
	}
	if err := d.buildDataPath(o.Consumers, o.Exec); err != nil {
		d.closeAll()
		return nil, err
	}
	w := cfg.WireGuard
	d.dev, err = wg.New(ctx, d.plane.TUN(), w, wopts)
	if err != nil {
		d.closeAll()
		return nil, err
	}
	d.serveUAPI()
	so := o.Session
	so.Log = log.With("component", "session")
	if so.Failover == nil {
		m := failover.New(failover.Config{Device: d.dev, Plane: d.plane, Guard: d.plane.Guard, Caps: d.caps, Servers: cfg.Servers})
		if m != nil {
			so.Failover = m
			if !m.Rekeys() {
				log.Info("server failover on", "servers", len(cfg.Servers), "after", cmpDuration(time.Duration(cfg.FailoverAfter), 5*time.Second).String())
			}
		}
	}
	if so.FailoverAfter == 0 {
		so.FailoverAfter = time.Duration(cfg.FailoverAfter)
	}
	if d.caps.Prober == nil && so.Probe == nil {
		// No check of the provider's own: ask the tunnel's DNS server.
		if dns := w.DNSServers(); len(dns) > 0 {
			so.Probe = session.DNSProbe(d.plane, dns[0])
		}
	}
	if u := cfg.PortCheck.URL; u != "" && so.PortCheck == nil {
		so.PortCheck, so.PortCheckName = d.outsideCheck(u), "outside check by "+portcheck.Host(u)
		so.PortCheckEvery = time.Duration(cfg.PortCheck.Every)
		log.Info("outside port check on", "checker", portcheck.Host(u), "every", cmpDuration(so.PortCheckEvery, 5*time.Minute).String())
	}
	// The data plane applies each event before anyone hears it (the
	// bridge listens on a new port before the demo, exec or a test dials
	// it).
	so.Apply = d.apply
	so.Provider = info.Name
	so.Store = d.store
	d.sess = session.New(d.dev, d.prov, so)
	log.Info("tunnel starting", "endpoint", d.dev.Endpoint().String(), "address", prefixes(w.Address), "provider", info.Name)
	return d, nil
}

// readSettings reads what New needs before anything starts, so a bad
// --forward, token file or proxy password fails here, not after the
// tunnel is up; tun mode checks its capability and its --forward.
func (d *Daemon) readSettings(exec bool) error {
	cfg := d.cfg
	var err error
	d.target.host, d.target.port, err = config.ParseHostPort(cfg.Forward.Target)
	if err != nil {
		return fmt.Errorf("--forward: %w", err)
	}
	d.target.protocols = cfg.Forward.Protocols
	if d.apiToken, err = api.ReadToken(cfg.API.TokenFile); err != nil {
		return err
	}
	if d.apiRoles, err = cfg.API.Roles(); err != nil {
		return err
	}
	if cfg.Proxy.HasCredentials() {
		pw, err := cfg.Proxy.Secret()
		if err != nil {
			return fmt.Errorf("proxy password: %w", err)
		}
		if cfg.Proxy.Username == "" || pw == "" {
			return errors.New("proxy credentials need both a username (--proxy-username) and a password (--proxy-password-file)")
		}
		d.proxyAuth = forward.Credentials{Username: cfg.Proxy.Username, Password: pw}
	}
	if cfg.WireGuard.Tun != "" && !exec {
		return checkTun(d.target, cfg.Forward.Target, cfg.WireGuard.Addresses())
	}
	return nil
}

// startProvider builds the provider and, for one that makes its own tunnel
// (PIA), lets it log in and register the key now.
func (d *Daemon) startProvider(ctx context.Context, info provider.Info, direct provider.Dialer) error {
	cfg := d.cfg
	var err error
	d.prov, err = info.New(provider.Env{
		Dialer:     tunnelDialer{d},
		Direct:     direct,
		Log:        d.log.With("component", "provider", "provider", info.Name),
		Tunnel:     cfg.WireGuard.Addresses(),
		DNS:        cfg.WireGuard.DNSServers(),
		Settings:   cfg.Provider.Settings,
		TargetPort: d.target.port,
		LastPorts:  session.SavedPorts(d.store, info.Name),
		State:      d.store,
		PrivateKey: cfg.WireGuard.PrivateKey,
		Roots:      d.roots,
	})
	if err != nil {
		return err
	}
	d.caps = provider.CapsOf(d.prov)
	if tm := d.caps.TunnelMaker; tm != nil {
		w, err := tm.MakeTunnel(ctx)
		if err != nil {
			return err
		}
		w.Name, w.Tun = cfg.WireGuard.Name, cfg.WireGuard.Tun
		cfg.WireGuard = w
		tm.SetTunnel(w.Addresses(), w.DNSServers())
	}
	return nil
}

// buildDataPath makes the data plane and the publishers.
func (d *Daemon) buildDataPath(extra []publish.Consumer, exec bool) error {
	var err error
	if d.plane, err = d.openPlane(exec); err != nil {
		return err
	}
	consumers, err := buildConsumers(d.cfg, d.plane.Interface(), d.log.With("component", "publish"))
	if err != nil {
		return err
	}
	plog := d.log.With("component", "publish")
	for _, c := range append(consumers, extra...) {
		d.pubs = append(d.pubs, publish.NewPublisher(c, plog, func(r status.Consumer) {
			d.sess.Note(session.Event{Kind: session.KindPublish, At: time.Now(), Consumer: &r})
		}))
	}
	return nil
}

// openPlane makes the data plane: exec's namespace, tun mode's TUN, or
// the netstack with its bridge.
func (d *Daemon) openPlane(exec bool) (plane, error) {
	c := planeConfig{wg: d.cfg.WireGuard, forward: d.cfg.Forward, target: d.target, log: d.log,
		publicIP: func() netip.Addr {
			var ip netip.Addr
			if p := d.publicIP.Load(); p != nil {
				ip, _ = netip.ParseAddr(p.IP)
			}
			return ip
		},
		appMappings: func(ms []status.AppMapping) {
			d.sess.Note(session.Event{Kind: session.KindApps, At: time.Now(), Apps: ms})
		},
	}
	if d.caps.Guarded != nil {
		c.control = d.caps.ControlEndpoints
	}
	switch {
	case exec:
		p, err := openExec(c)
		if err != nil {
			return nil, err
		}
		d.dnsUDP, d.dnsTCP = p.DNSUDP, p.DNSTCP // the forwarder's, inside
		return p, nil
	case c.wg.Tun != "":
		p, err := openTun(c)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	p, err := openNetstack(c)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// serveUAPI serves the device's control socket so `wg show NAME` works:
// in /var/run/wireguard as root, else in the state directory (where
// WireGuard's tools do not look; wgctrl can be pointed there). A failure
// costs only the socket.
func (d *Daemon) serveUAPI() {
	name := d.cfg.WireGuard.Name
	if name == "" {
		name = "vpnfwd"
	}
	if name == "-" {
		return
	}
	dir := wg.RunDir
	if os.Geteuid() != 0 {
		dir = d.cfg.StateDir
	}
	if dir == "" {
		return
	}
	u, err := d.dev.ServeUAPI(filepath.Join(dir, name+".sock"))
	if err != nil {
		d.log.Warn("no WireGuard control socket (wg show): "+err.Error(), "hint", "give this device another name with --wg-name NAME")
		return
	}
	d.uapi = u
	d.log.Info("WireGuard control socket", "path", u.Path(), "try", "wg show "+name)
}

// outsideCheck asks the port checker at tmpl through the tunnel whether
// the lease's first port is open.
func (d *Daemon) outsideCheck(tmpl string) func(context.Context, provider.Lease) (bool, error) {
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: tunnelDialer{d}.DialContext,
		MaxIdleConns: 1, IdleConnTimeout: time.Second}}
	refused := func() int64 {
		var s status.Status
		d.plane.Describe(&s)
		return s.Forward.TCPRefused // the bridge's; none without one
	}
	return func(ctx context.Context, l provider.Lease) (bool, error) {
		before := refused()
		open, err := portcheck.Check(ctx, c, tmpl, l.PublicIP, l.PublicPorts()[0])
		if err == nil && !open && refused() > before {
			// The checker's connection came through to the bridge, which
			// found the local service down.
			return false, session.ErrServiceDown
		}
		return open, err
	}
}

// cmpDuration is d, or def when d is zero.
func cmpDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// guard keeps the proxies' clients away from the provider's control
// endpoints (nil when the provider has none).
func (d *Daemon) guard() *forward.Guard {
	g := d.caps.Guarded
	if g == nil {
		return nil
	}
	return forward.NewGuard(func(network string, dst netip.AddrPort) bool {
		return reserved(g, network, dst)
	}, d.log.With("component", "proxy-guard"))
}

// reserved reports whether dst is one of the provider's control endpoints.
func reserved(g provider.Guarded, network string, dst netip.AddrPort) bool {
	for _, e := range g.ControlEndpoints() {
		if e.Network == network && e.Addr == dst {
			return true
		}
	}
	return false
}

// tunnelDialer dials through the daemon's data plane once it exists.
type tunnelDialer struct{ d *Daemon }

func (t tunnelDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if t.d.plane == nil {
		return nil, errors.New("the tunnel is not up yet")
	}
	return t.d.plane.DialContext(ctx, network, addr)
}

func hasProto(ps []string, p string) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func prefixes(ps []tunnel.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

// Local listeners' caps (connlimit), counted from accept: connections
// held at once, from one address off this host, and the part of them
// only this host's programs (a health check on loopback) may use (the
// bridge's remote peers need descriptors too).
var localLimits = connlimit.Limits{Max: 256, PerAddr: 32, Reserve: 64}

// capped caps a local listener's connections.
func capped(l net.Listener) net.Listener { return connlimit.New(l, localLimits) }

// listen opens the local sockets before anything is started, so a busy
// port fails fast with a hint.
func (d *Daemon) listen() error {
	open := func(name, flag, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w (choose another with --%s ADDR, or --%s \"\" to turn it off)", name, addr, err, flag, flag)
		}
		return capped(l), nil
	}
	var err error
	if d.socksL, err = open("SOCKS5 proxy", "socks5", d.cfg.Proxy.SOCKS5); err != nil {
		return err
	}
	if d.httpL, err = open("HTTP proxy", "http-proxy", d.cfg.Proxy.HTTP); err != nil {
		return err
	}
	if err := d.openLocals(); err != nil {
		return err
	}
	if d.cfg.API.Listen != "" {
		if d.apiL, err = api.Listen(d.cfg.API.Listen); err != nil {
			return fmt.Errorf("%w (choose another with --api ADDR)", err)
		}
		d.apiL = capped(d.apiL)
	}
	d.openOwnSocket()
	return d.dnsSockets()
}

// openLocals opens the local forwards' sockets (a busy port fails at
// start).
func (d *Daemon) openLocals() error {
	var allow []netip.Prefix
	for _, a := range d.cfg.Forward.LocalAllow {
		if p, err := netip.ParsePrefix(a); err == nil {
			allow = append(allow, p.Masked())
		}
	}
	f := d.cfg.Forward
	for _, v := range f.Local {
		spec, err := forward.ParseLocalForward(v)
		if err != nil {
			return err
		}
		l, err := forward.ListenLocal(spec, forward.LocalConfig{Allow: allow, IdleTimeout: time.Duration(f.IdleTimeout), UDPIdle: time.Duration(f.UDPIdle),
			Log: d.log.With("component", "local-forward")})
		if err != nil {
			return fmt.Errorf("%w (choose another listening port in --local-forward)", err)
		}
		d.locals = append(d.locals, l)
	}
	return nil
}

func (d *Daemon) closeAll() {
	for _, l := range []net.Listener{d.socksL, d.httpL, d.apiL, d.dnsTCP} {
		if l != nil {
			l.Close()
		}
	}
	for _, l := range d.locals {
		l.Close()
	}
	if d.dnsUDP != nil {
		d.dnsUDP.Close()
	}
	d.restoreResolvConf()
	if d.uapi != nil {
		d.uapi.Close()
	}
	// The tunnel first: handshakes in progress and bridged connections
	// fail at once, so the bridge's Close does not wait on remote peers.
	if d.dev != nil {
		d.dev.Close() // closes the stack or the TUN too
	}
	if d.plane != nil {
		d.plane.Close()
	}
	d.stopKillSwitch()
	if d.apiL != nil && strings.HasPrefix(d.cfg.API.Listen, "unix:") {
		os.Remove(strings.TrimPrefix(d.cfg.API.Listen, "unix:"))
	}
	d.closeOwnSocket()
}

// run serves until ctx ends, then shuts down: the session releases the
// lease, consumers hear that the port is gone, and everything closes
// within a few seconds, whatever remote peers still hold.
func (d *Daemon) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	goFunc := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	pubCtx, pubCancel := context.WithCancel(context.Background())
	var pubs sync.WaitGroup
	for _, p := range d.pubs {
		sub := d.sess.Subscribe()
		pubs.Add(1)
		goFunc(func() { defer pubs.Done(); p.Run(pubCtx, sub) })
	}
	srvCtx, srvCancel := context.WithCancel(context.Background())
	if d.socksL != nil {
		s := &forward.SOCKS5{Tunnel: d.plane, Auth: d.proxyAuth, Guard: d.guard(), Log: d.log.With("component", "socks5")}
		goFunc(func() { s.Serve(d.socksL) })
		d.log.Info("SOCKS5 proxy listening", "addr", d.socksL.Addr().String())
	}
	if d.httpL != nil {
		h := forward.NewHTTPProxy(d.plane, d.proxyAuth, d.guard(), d.log.With("component", "http-proxy"))
		goFunc(func() { h.Serve(srvCtx, d.httpL) })
		d.log.Info("HTTP proxy listening", "addr", d.httpL.Addr().String())
	}
	for _, l := range d.locals {
		goFunc(func() { l.Serve(d.plane, d.guard()) })
		sp := l.Spec()
		d.log.Info("local forward listening", "listen", l.Addr().String(), "protocol", sp.Proto(), "to", net.JoinHostPort(sp.Host, strconv.Itoa(int(sp.Port))), "through", "the tunnel")
	}
	if d.apiL != nil {
		h := api.NewServer(d, d.sess, api.Options{Token: d.apiToken, Roles: d.apiRoles, AuthRequired: d.cfg.API.GluetunAuth, Listen: d.cfg.API.Listen,
			AllowedHosts: d.cfg.API.AllowedHosts, Log: d.log.With("component", "api")})
		goFunc(func() { api.Serve(srvCtx, d.apiL, h) })
		d.log.Info("control API listening", "addr", d.apiL.Addr().String())
	}
	d.serveOwnSocket(srvCtx, goFunc)
	d.plane.Serve(srvCtx, goFunc)
	d.serveDNS(srvCtx, goFunc)
	if d.ipLookup != nil {
		goFunc(func() { d.publicIPLoop(srvCtx) })
	}
	goFunc(func() {
		trimMemory(srvCtx, func() (uint64, error) {
			st, err := d.dev.Stats()
			return st.RxBytes + st.TxBytes, err
		})
	})
	followCtx, stopFollow := context.WithCancel(ctx)
	if d.ks != nil {
		goFunc(func() {
			d.ks.FollowCgroup(followCtx, 250*time.Millisecond, func(id uint64, err error) {
				if err != nil {
					d.log.Error("kill switch: the confined cgroup was re-created but the rules could not follow it", "cgroup", d.cfg.KillSwitch.OnlyCgroup, "err", err)
					return
				}
				d.log.Warn("kill switch: the confined cgroup was re-created (unit restarted); the rules follow its new id", "cgroup", d.cfg.KillSwitch.OnlyCgroup, "id", id)
			})
		})
	}
	runErr := d.sess.Run(ctx)
	stopFollow()
	d.log.Info("stopping")
	// The publishers hear the last events (the port lost, a down hook
	// runs) within a second.
	waitFor(&pubs, time.Second)
	srvCancel()
	pubCancel()
	d.closeAll()
	wg.Wait()
	d.log.Info("stopped")
	return runErr
}

// waitFor waits for wg, timeout at most.
func waitFor(wg *sync.WaitGroup, timeout time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
