// Package wg runs the embedded wireguard-go device: it turns a
// tunnel.WireGuard into UAPI settings, brings the device up over any
// tun.Device (vpnfwd uses its own gVisor netstack), reads handshake and
// traffic counters, and restarts the handshake on demand (Rehandshake),
// resolving the endpoint's host name again. Deciding when the tunnel is
// dead is the session's job.
package wg

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/tunnel"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Resolver looks up an endpoint's host name (outside the tunnel).
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// Options tune a Device; zero values pick the defaults.
type Options struct {
	Logger *slog.Logger
	// Bind is the UDP transport; default: wireguard-go's standard bind.
	Bind conn.Bind
	// FwMark marks the WireGuard UDP socket (SO_MARK) for firewall rules.
	FwMark uint32
	// Resolve resolves endpoint host names; default: the system resolver.
	Resolve Resolver
	// OnEndpoint, if set, hears the first peer's resolved endpoint before
	// the first packet goes to it, and again before the device moves to a
	// new one; an error stops New (the kill switch must be in place first).
	OnEndpoint func(netip.AddrPort) error
}

// Device is a running wireguard-go device. Close is safe to call twice.
type Device struct {
	dev        *device.Device
	cfg        tunnel.WireGuard
	log        *slog.Logger
	res        Resolver
	onEndpoint func(netip.AddrPort) error
	once       sync.Once
	mu         sync.Mutex
	remote     map[tunnel.Key]netip.AddrPort // resolved endpoint per peer
}

// New configures a device over t and brings it up. The endpoint host names
// are resolved now with opts.Resolve.
func New(ctx context.Context, t tun.Device, cfg tunnel.WireGuard, opts Options) (*Device, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Bind == nil {
		opts.Bind = conn.NewDefaultBind()
	}
	if opts.Resolve == nil {
		opts.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	d := &Device{cfg: cfg, log: opts.Logger, res: opts.Resolve, onEndpoint: opts.OnEndpoint, remote: map[tunnel.Key]netip.AddrPort{}}
	wglog := &device.Logger{
		Verbosef: func(format string, args ...any) { d.log.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { d.log.Warn(fmt.Sprintf(format, args...)) },
	}
	out, in := newInflight(inflightLimit, staleAfter), newInflight(inflightLimit, staleAfter)
	t = &boundedTUN{Device: t, out: out, in: in}
	d.dev = device.NewDevice(t, &boundedBind{Bind: opts.Bind, out: out, in: in}, wglog)
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\n", cfg.PrivateKey.Hex())
	if cfg.ListenPort != 0 {
		fmt.Fprintf(&b, "listen_port=%d\n", cfg.ListenPort)
	}
	if opts.FwMark != 0 {
		fmt.Fprintf(&b, "fwmark=%d\n", opts.FwMark)
	}
	b.WriteString("replace_peers=true\n")
	for i, p := range cfg.Peers {
		var ap netip.AddrPort
		if p.Endpoint != "" {
			var err error
			if ap, err = d.resolve(ctx, p.Endpoint); err != nil {
				d.dev.Close()
				return nil, err
			}
			d.remote[p.PublicKey] = ap
			if i == 0 && d.onEndpoint != nil {
				if err := d.onEndpoint(ap); err != nil {
					d.dev.Close()
					return nil, err
				}
			}
		}
		writePeer(&b, p, ap)
	}
	if err := d.dev.IpcSet(b.String()); err != nil {
		d.dev.Close()
		return nil, fmt.Errorf("configuring WireGuard device: %w", err)
	}
	if err := d.dev.Up(); err != nil {
		d.dev.Close()
		return nil, fmt.Errorf("bringing WireGuard device up: %w", err)
	}
	return d, nil
}

// writePeer writes a whole [Peer] in UAPI form, endpoint ap if valid.
func writePeer(b *strings.Builder, p tunnel.Peer, ap netip.AddrPort) {
	fmt.Fprintf(b, "public_key=%s\n", p.PublicKey.Hex())
	if !p.PresharedKey.IsZero() {
		fmt.Fprintf(b, "preshared_key=%s\n", p.PresharedKey.Hex())
	}
	if ap.IsValid() {
		fmt.Fprintf(b, "endpoint=%s\n", ap)
	}
	if p.PersistentKeepalive > 0 {
		fmt.Fprintf(b, "persistent_keepalive_interval=%d\n", p.PersistentKeepalive)
	}
	b.WriteString("replace_allowed_ips=true\n")
	for _, a := range p.AllowedIPs {
		fmt.Fprintf(b, "allowed_ip=%s\n", a)
	}
}

func (d *Device) resolve(ctx context.Context, ep tunnel.Endpoint) (netip.AddrPort, error) {
	host, port := ep.HostPort()
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a, port), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := d.res(ctx, host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolving endpoint %s: %w", ep, err)
	}
	for _, a := range addrs {
		if a.Is4() || a.Is4In6() {
			return netip.AddrPortFrom(a.Unmap(), port), nil
		}
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving endpoint %s: no address", ep)
	}
	return netip.AddrPortFrom(addrs[0], port), nil
}

// Endpoint returns the current resolved endpoint of the first peer.
func (d *Device) Endpoint() netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.cfg.Peers) == 0 {
		return netip.AddrPort{}
	}
	return d.remote[d.cfg.Peers[0].PublicKey]
}

// Close stops the device and closes its TUN.
func (d *Device) Close() error {
	d.once.Do(func() { d.dev.Close() })
	return nil
}

// Down stops the device: no packet goes in or out of the tunnel (its
// socket closes) until Up. The peers and their keys stay.
func (d *Device) Down() error { return d.dev.Down() }

// Up starts a device that Down stopped; the next packet makes a new
// handshake.
func (d *Device) Up() error { return d.dev.Up() }

// Stats reads the first peer's counters from the device.
func (d *Device) Stats() (tunnel.Stats, error) {
	text, err := d.dev.IpcGet()
	if err != nil {
		return tunnel.Stats{}, fmt.Errorf("reading WireGuard stats: %w", err)
	}
	return parseStats(text), nil
}

// parseStats reads the first peer's counters from UAPI get output.
func parseStats(text string) tunnel.Stats {
	var (
		st        tunnel.Stats
		peers     int
		sec, nsec int64
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		if k == "public_key" {
			peers++
		}
		if peers != 1 {
			continue
		}
		switch k {
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			st.RxBytes, _ = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			st.TxBytes, _ = strconv.ParseUint(v, 10, 64)
		case "endpoint":
			st.Endpoint = v
		}
	}
	if sec != 0 || nsec != 0 {
		st.LastHandshake = time.Unix(sec, nsec)
	}
	return st
}

// ListenPort is the UDP port the device listens on.
func (d *Device) ListenPort() (uint16, error) {
	text, err := d.dev.IpcGet()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			n, err := strconv.ParseUint(v, 10, 16)
			return uint16(n), err
		}
	}
	return 0, fmt.Errorf("device reports no listen port")
}

// AddPeer adds (or updates) a peer without an endpoint: a server learns
// its clients' endpoints from their handshakes.
func (d *Device) AddPeer(pub tunnel.Key, allowed ...netip.Prefix) error {
	var b strings.Builder
	fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\n", pub.Hex())
	for _, a := range allowed {
		fmt.Fprintf(&b, "allowed_ip=%s\n", a)
	}
	return d.dev.IpcSet(b.String())
}

// RemovePeer removes a peer.
func (d *Device) RemovePeer(pub tunnel.Key) error {
	return d.dev.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\n", pub.Hex()))
}
