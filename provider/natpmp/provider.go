package natpmp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// Conventions are the provider-specific twists on plain NAT-PMP.
type Conventions struct {
	Name string
	// ZeroInternal asks with internal port 0 and requires the reply's
	// internal port to be 0 or the external one (ProtonVPN).
	ZeroInternal bool
	// UDPFirst maps UDP before TCP (Proton's own client does).
	UDPFirst bool
	// FirstSuggestion is the public port asked for when none is held or
	// remembered (Proton's client asks for 1; 0 has been reported failing).
	FirstSuggestion uint16
	// DefaultLifetime is asked for when the user gives none.
	DefaultLifetime time.Duration
	// Refused explains an ICMP refusal from gateway to the user.
	Refused func(gateway netip.AddrPort) string
	// RenewEvery, when set and shorter than the lease, is the renewal
	// cadence (Proton's client renews every 45 s); else half the lease.
	RenewEvery time.Duration
}

// Generic is plain RFC 6886 against any gateway.
var Generic = Conventions{
	Name:            "natpmp",
	DefaultLifetime: 2 * time.Minute,
	Refused: func(gw netip.AddrPort) string {
		return fmt.Sprintf("NAT-PMP refused on %s: nothing answers NAT-PMP there; check --gateway (default: the WireGuard config's first DNS server) and that the VPN server offers port forwarding", gw)
	},
}

// Info describes the generic NAT-PMP provider.
var Info = provider.Info{
	Name:    "natpmp",
	Summary: "any WireGuard server whose gateway speaks NAT-PMP (RFC 6886)",
	Needs:   "a wg-quick file; --gateway IP (default: the config's first DNS server)",
	Port:    "chosen by the gateway; vpnfwd suggests the previous one",
	Renewal: "at half the granted lifetime (asks for 2 min)",
	Options: Options,
	New:     func(env provider.Env) (provider.Provider, error) { return New(env, Generic) },
}

// Options are the settings of NAT-PMP providers.
var Options = []provider.Option{
	{Key: "gateway", Flag: "gateway", Kind: provider.IPv4, Usage: "NAT-PMP gateway `IP` (default: the config's first DNS server)"},
	{Key: "lifetime", Flag: "lifetime", Kind: provider.Duration, Usage: "NAT-PMP mapping `DURATION` to ask for"},
	{Key: "ports_count", Flag: "ports-count", Kind: provider.Count, Usage: "how many ports to forward, `N` from 1 to 5 (Proton gives up to 5; gluetun's VPN_PORT_FORWARDING_PORTS_COUNT)"},
}

// multiBase is the first internal port asked for when several ports are
// forwarded: gluetun asks Proton for 56789, 56790, ... (the public ports
// are the gateway's choice, and differ).
const multiBase = 56789

// Provider keeps a TCP and a UDP mapping for one port alive. It is also
// the tunnel's liveness check (Probe), and re-maps at once when the
// gateway restarted or the session asks (Refresh).
type Provider struct {
	env     provider.Env
	conv    Conventions
	gateway netip.Addr
	life    time.Duration
	client  *Client // mappings, one request at a time
	probe   *Client // liveness: one quick try, its own socket
	probe2  *Client // the second mapping's check, at the same time
	refresh chan struct{}
	// restarted: the gateway lost its mappings; the next mapping is a
	// recovery step.
	restarted atomic.Bool
	// plain: the gateway refused the conventions' internal port 0 (a
	// miniupnpd, not Proton's gateway); requests name an internal port.
	plain atomic.Bool
	// held is what the probe re-asserts; the mapping loop sets it.
	held atomic.Pointer[heldMaps]
	// moved: the tunnel moved to another server (Moved); interrupt ends
	// the mapping loop's current attempt; prefer is the port number held
	// on the old server, asked for on the new one (mapping loop only).
	moved     chan struct{}
	interrupt atomic.Pointer[context.CancelFunc]
	prefer    uint16
	// count is how many ports are forwarded (ports_count, default 1);
	// checks counts the probes, to re-assert one port of several each.
	count  int
	checks atomic.Uint64
}

// Option adjusts a Provider (tests shorten the retry schedule).
type Option func(*Provider)

// WithRetry sets the mapping client's first timeout and attempts.
func WithRetry(first time.Duration, attempts int) Option {
	return func(p *Provider) { p.client.FirstTimeout, p.client.Attempts = first, attempts }
}

// New builds a NAT-PMP provider with the given conventions.
func New(env provider.Env, conv Conventions, opts ...Option) (*Provider, error) {
	gw, err := gatewayOf(env)
	if err != nil {
		return nil, err
	}
	life, err := env.Settings.Duration("lifetime")
	if err != nil {
		return nil, fmt.Errorf("provider.lifetime: %w", err)
	}
	if life == 0 {
		life = conv.DefaultLifetime
	}
	if life < 2*time.Second {
		return nil, fmt.Errorf("provider.lifetime %s is too short (at least 2s)", life)
	}
	count, err := env.Settings.Count("ports_count")
	if err != nil {
		return nil, fmt.Errorf("provider.ports_count: %w", err)
	}
	p := &Provider{env: env, conv: conv, gateway: gw, life: life, refresh: make(chan struct{}, 1), moved: make(chan struct{}, 1), count: max(count, 1)}
	p.client = NewClient(env.Dialer, gw, env.Log)
	// RFC 6886 doubles the wait up to 64 s; capped at 2 s a mapping goes
	// through within 2 s of the tunnel coming back.
	p.client.MaxTimeout = 2 * time.Second
	p.probe, p.probe2 = NewClient(env.Dialer, gw, env.Log), NewClient(env.Dialer, gw, env.Log)
	p.probe.FirstTimeout, p.probe.Attempts = time.Second, 1
	p.probe2.FirstTimeout, p.probe2.Attempts = time.Second, 1
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Probe is the tunnel's liveness check and the proof that the port is
// still forwarded. While a port is held it asks the gateway for each held
// mapping again, with the same internal port, public port and lifetime:
// RFC 6886 3.3 makes that idempotent for a mapping that exists, and a
// gateway that forgot it (restarted without resetting its epoch, as
// miniupnpd does with its shipped system_uptime=yes, or a mapping deleted
// by someone else) makes it again, on the same public port where that is
// free. Two small requests every check, at once (80 a minute at the
// default 1.5-s check). With no port held it asks for the external
// address only.
//
// An ICMP refusal also proves the tunnel carries traffic, so it is no
// error here; the mapping loop reports it. A reply whose epoch went back
// (a gateway restart), a different public port or a refusal to keep the
// mapping make the mapping loop map again at once.
func (p *Provider) Probe(ctx context.Context) (provider.Check, error) {
	h := p.held.Load()
	if h == nil {
		_, err := p.probe.External(ctx)
		switch {
		case errors.Is(err, ErrRefused):
			return provider.Check{}, nil
		case err != nil:
			return provider.Check{}, err
		}
		p.noticeRestart()
		return provider.Check{}, nil
	}
	// Both mappings at once, each on its own socket: one round trip.
	// Of several ports, one is re-asserted each check, in turn (a
	// gateway that restarted shows in any of them).
	maps := h.maps
	if len(maps) > 2 {
		k := int(p.checks.Add(1) % uint64(h.ports))
		maps = nil
		for _, m := range h.maps {
			if m.idx == k {
				maps = append(maps, m)
			}
		}
	}
	type answer struct {
		m   heldMap
		r   MapReply
		err error
	}
	answers := make([]answer, len(maps))
	var wg sync.WaitGroup
	for i, m := range maps {
		c := p.probe
		if i > 0 {
			c = p.probe2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Map(ctx, m.req)
			answers[i] = answer{m, r, err}
		}()
	}
	wg.Wait()
	check := provider.Check{Verified: true, Method: "mapping re-asserted with the gateway"}
	var lost error // a request that got nothing back
	answered := false
	for _, a := range answers {
		var re ResultError
		switch {
		case errors.Is(a.err, ErrRefused):
			return provider.Check{}, nil // the gateway's service is gone; the mapping loop says so
		case errors.As(a.err, &re):
			// It answered, so the tunnel works, but will not keep the mapping.
			answered = true
			check = provider.Check{Dead: fmt.Sprintf("the gateway refused to keep %s port %d: %v", ProtoName(a.m.req.Op), a.m.public, a.err)}
		case a.err != nil:
			lost = a.err
		case a.r.External != a.m.public:
			answered = true
			check = provider.Check{Dead: fmt.Sprintf("the gateway no longer forwards %s port %d (it had forgotten the mapping and now gives %d)", ProtoName(a.m.req.Op), a.m.public, a.r.External)}
		default:
			answered = true
		}
		if check.Dead != "" {
			break
		}
	}
	switch {
	case lost != nil && !answered:
		return provider.Check{}, lost
	case lost != nil && check.Dead == "":
		check = provider.Check{} // the tunnel works; one mapping unknown this time
	}
	if p.noticeRestart() {
		return check, nil
	}
	if check.Dead != "" {
		p.env.Log.Warn("NAT-PMP gateway lost the mapping: mapping again", "gateway", p.gateway.String(), "why", check.Dead)
		p.restarted.Store(true)
		p.Refresh()
	}
	return check, nil
}

// noticeRestart maps again at once when the probe's replies showed that
// the gateway restarted (its epoch went back); it reports whether so.
func (p *Provider) noticeRestart() bool {
	if r1, r2 := p.probe.Restarted(), p.probe2.Restarted(); !r1 && !r2 {
		return false
	}
	p.env.Log.Warn("NAT-PMP gateway restarted (epoch went back): mapping again", "gateway", p.gateway.String())
	p.restarted.Store(true)
	p.Refresh()
	return true
}

// ControlEndpoints implements provider.Guarded: the gateway's NAT-PMP
// port, which answers anyone in the tunnel.
func (p *Provider) ControlEndpoints() []provider.Endpoint {
	return []provider.Endpoint{{Network: "udp", Addr: netip.AddrPortFrom(p.gateway, Port)}}
}

// heldMaps is what the probe re-asserts: the requests that made the held
// lease, with the public port each must get back.
type heldMaps struct {
	maps  []heldMap
	ports int // how many lease ports the maps are for
}

type heldMap struct {
	req    MapRequest
	public uint16
	idx    int // the lease port it belongs to
}

// hold records the lease the probe re-asserts (nil: none held).
func (p *Provider) hold(l provider.Lease, life time.Duration) {
	if !l.Held() {
		p.held.Store(nil)
		return
	}
	h := &heldMaps{ports: len(l.Ports)}
	for i, port := range l.Ports {
		internal := port.Local
		if p.zeroInternal() {
			internal = 0
		}
		for _, op := range []uint8{OpMapTCP, OpMapUDP} {
			if port.Protocol != "" && port.Protocol != ProtoName(op) {
				continue
			}
			h.maps = append(h.maps, heldMap{
				req:    MapRequest{Op: op, Internal: internal, External: port.Public, Lifetime: uint32(life / time.Second)},
				public: port.Public,
				idx:    i,
			})
		}
	}
	p.held.Store(h)
}

// Refresh makes the mapping loop renew now.
func (p *Provider) Refresh() {
	select {
	case p.refresh <- struct{}{}:
	default:
	}
}

func gatewayOf(env provider.Env) (netip.Addr, error) {
	if g := env.Settings.String("gateway"); g != "" {
		a, err := netip.ParseAddr(g)
		if err != nil || !a.Is4() {
			return netip.Addr{}, fmt.Errorf("provider.gateway %q is not an IPv4 address", g)
		}
		return a, nil
	}
	for _, d := range env.DNS {
		if d.Is4() {
			return d, nil
		}
	}
	return netip.Addr{}, errors.New("no NAT-PMP gateway: give --gateway IP (the VPN server's tunnel address), or a DNS line in the WireGuard config")
}

// Run implements provider.Provider.
func (p *Provider) Run(ctx context.Context, report func(provider.Lease)) error {
	defer p.client.Close()
	defer p.probe.Close()
	defer p.probe2.Close()
	var held provider.Lease
	backoff := time.Second
	gw := netip.AddrPortFrom(p.gateway, Port)
	for {
		mctx, interrupt := context.WithCancel(ctx)
		p.interrupt.Store(&interrupt)
		lease, err := p.mapAll(mctx, held)
		interrupt()
		if ctx.Err() != nil {
			p.held.Store(nil)
			p.release(held)
			return nil
		}
		if p.takeMoved(&held) {
			backoff = time.Second
			continue
		}
		wait := p.life / 2
		if e := p.conv.RenewEvery; e > 0 && e < p.life {
			wait = e
		}
		if err != nil {
			if held.Held() && time.Now().After(held.Expires) {
				held = provider.Lease{Provider: p.conv.Name}
				p.hold(held, 0)
			}
			report(held.Failed(fmt.Errorf("port mapping via %s: %w", gw, p.explain(err))))
			wait, backoff = backoff, min(backoff*2, 30*time.Second)
		} else {
			backoff = time.Second
			held = lease
			p.hold(held, p.life)
			if p.client.Restarted() {
				// The restart may have come between our TCP and UDP
				// requests: map everything again now, asking for the same port.
				p.env.Log.Warn("NAT-PMP gateway restarted (epoch went back): mapping again", "gateway", gw.String())
				p.restarted.Store(true)
				wait = 0
			} else if p.restarted.Swap(false) {
				lease.Note = fmt.Sprintf("re-mapped port %d after the gateway restarted", lease.Ports[0].Public)
			}
			report(lease)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			p.held.Store(nil)
			p.release(held)
			return nil
		case <-t.C:
		case <-p.refresh:
			t.Stop()
		case <-p.moved:
			t.Stop()
			p.forget(&held)
			backoff = time.Second
		}
	}
}

// Moved implements provider.Mover: the tunnel is on another server, where
// nothing is mapped. The mapping loop stops what it is doing and maps at
// once, asking for the port number it held.
func (p *Provider) Moved() {
	p.held.Store(nil)
	select {
	case p.moved <- struct{}{}:
	default:
	}
	if f := p.interrupt.Load(); f != nil {
		(*f)()
	}
}

// takeMoved, on the mapping loop, forgets the old server's lease if the
// tunnel moved; it reports whether it did.
func (p *Provider) takeMoved(held *provider.Lease) bool {
	select {
	case <-p.moved:
		p.forget(held)
		return true
	default:
		return false
	}
}

// forget drops the lease of the server the tunnel left, keeping its port
// number to ask for on the new one.
func (p *Provider) forget(held *provider.Lease) {
	if held.Held() {
		p.prefer = held.Ports[0].Public
	}
	*held = provider.Lease{Provider: p.conv.Name}
	p.held.Store(nil)
	p.restarted.Store(false)
	p.env.Log.Info("the tunnel moved to another server: mapping a port there", "asking_for", p.prefer)
}

// explain turns a mapping error into what the user should do.
func (p *Provider) explain(err error) error {
	gw := netip.AddrPortFrom(p.gateway, Port)
	var re ResultError
	switch {
	case errors.Is(err, ErrRefused):
		return errors.New(p.conv.Refused(gw))
	case errors.Is(err, ErrNoAnswer):
		return fmt.Errorf("%w: is the tunnel up (handshake), and is %s the VPN server's gateway?", err, p.gateway)
	case errors.As(err, &re) && re.Code == ResultNotAuthorized:
		return fmt.Errorf("%w: the gateway does not allow port forwarding for this key or server", err)
	}
	return err
}

// suggest is the public port to ask for: the one held, else the last one.
func (p *Provider) suggest(held provider.Lease) uint16 {
	if held.Held() {
		return held.Ports[0].Public
	}
	if p.prefer != 0 {
		return p.prefer
	}
	if len(p.env.LastPorts) > 0 {
		return p.env.LastPorts[0]
	}
	return 0
}

// zeroInternal says whether requests name internal port 0 (the
// conventions', unless the gateway refused it).
func (p *Provider) zeroInternal() bool {
	return p.conv.ZeroInternal && !p.plain.Load() && p.count == 1
}

// internal is the internal port a generic request names.
func (p *Provider) internal(held provider.Lease) uint16 {
	switch {
	case held.Held():
		return held.Ports[0].Local
	case p.env.TargetPort != 0:
		return p.env.TargetPort
	case len(p.env.LastPorts) > 0:
		return p.env.LastPorts[0]
	}
	return uint16(20000 + rand.IntN(40000))
}

// mapAll maps both protocols, the first (TCP, or UDP by the
// conventions) with the suggested port and the second with the port the
// first got, and builds the lease.
func (p *Provider) mapAll(ctx context.Context, held provider.Lease) (provider.Lease, error) {
	lease := provider.Lease{Provider: p.conv.Name, Protocols: []string{"tcp", "udp"}}
	if ext, err := p.client.External(ctx); err == nil {
		lease.PublicIP = ext.Addr
	} else if errors.Is(err, ErrRefused) || errors.Is(err, ErrNoAnswer) || ctx.Err() != nil {
		return lease, err
	}
	if p.count > 1 {
		return p.mapMany(ctx, held, lease)
	}
	internal, suggest := p.internal(held), p.suggest(held)
	switch {
	case p.zeroInternal():
		internal = 0
		if suggest == 0 {
			suggest = p.conv.FirstSuggestion
		}
	case suggest == 0:
		suggest = internal
	}
	life := uint32(p.life / time.Second)
	ops := [2]uint8{OpMapTCP, OpMapUDP}
	if p.conv.UDPFirst {
		ops = [2]uint8{OpMapUDP, OpMapTCP}
	}
	first, err := p.mapOne(ctx, MapRequest{Op: ops[0], Internal: internal, External: suggest, Lifetime: life})
	var re ResultError
	if err != nil && p.zeroInternal() && errors.As(err, &re) && re.Code == ResultNotAuthorized {
		// Proton's gateways take internal port 0; a gateway that
		// refuses it (miniupnpd's permission rules name internal ports)
		// is asked the plain RFC 6886 way from now on.
		p.env.Log.Warn("the gateway refuses "+p.conv.Name+"'s request (internal port 0); asking as plain NAT-PMP, with an internal port", "gateway", p.gateway.String())
		p.plain.Store(true)
		return p.mapAll(ctx, held)
	}
	if err != nil {
		return lease, err
	}
	// A gateway that already keeps the two apart is asked to renew the
	// second protocol's own port.
	want := first.External
	if held := heldPort(held, ProtoName(ops[1])); held != 0 {
		want = held
	}
	second, err := p.mapOne(ctx, MapRequest{Op: ops[1], Internal: internal, External: want, Lifetime: life})
	if err != nil {
		return lease, err
	}
	if second.External != first.External && second.External != want {
		// RFC 6886 3.3: asking again for an internal port that is mapped
		// returns the same mapping. Delete the odd one and ask again.
		p.env.Log.Warn("gateway gave TCP and UDP different ports; asking again for one port", ProtoName(ops[0]), first.External, ProtoName(ops[1]), second.External)
		if _, err := p.client.Map(ctx, MapRequest{Op: ops[1], Internal: second.Internal}); err != nil {
			return lease, fmt.Errorf("deleting the %s mapping of port %d: %w", ProtoName(ops[1]), second.External, err)
		}
		if second, err = p.mapOne(ctx, MapRequest{Op: ops[1], Internal: internal, External: first.External, Lifetime: life}); err != nil {
			return lease, err
		}
	}
	local := func(r MapReply) uint16 {
		if r.Internal == 0 {
			return r.External
		}
		return r.Internal
	}
	if second.External == first.External {
		lease.Ports = []provider.Port{{Public: first.External, Local: local(first)}}
	} else {
		// The gateway keeps them apart: bridge and publish each on its own.
		p.env.Log.Warn("gateway forwards TCP and UDP on different ports; each is bridged on its own", ProtoName(ops[0]), first.External, ProtoName(ops[1]), second.External)
		tcp, udp := first, second
		if p.conv.UDPFirst {
			tcp, udp = second, first
		}
		lease.Ports = []provider.Port{
			{Public: tcp.External, Local: local(tcp), Protocol: "tcp"},
			{Public: udp.External, Local: local(udp), Protocol: "udp"},
		}
	}
	now := time.Now()
	lease.Renewed = now
	lease.Expires = now.Add(time.Duration(min(first.Lifetime, second.Lifetime)) * time.Second)
	if got := min(first.Lifetime, second.Lifetime); got < life {
		p.life = time.Duration(max(got, 2)) * time.Second
	}
	return lease, nil
}

// heldPort is the public port held for proto alone ("tcp" or "udp"), 0
// when the lease forwards both on one port.
func heldPort(l provider.Lease, proto string) uint16 {
	for _, p := range l.Ports {
		if p.Protocol == proto {
			return p.Public
		}
	}
	return 0
}

func (p *Provider) mapOne(ctx context.Context, req MapRequest) (MapReply, error) {
	r, err := p.client.Map(ctx, req)
	if err != nil {
		return r, fmt.Errorf("mapping %s port: %w", ProtoName(req.Op), err)
	}
	if r.External == 0 {
		return r, fmt.Errorf("mapping %s port: gateway answered port 0", ProtoName(req.Op))
	}
	// Both shapes are seen from Proton: internal 0, or internal = external.
	if p.zeroInternal() && r.Internal != 0 && r.Internal != r.External {
		return r, fmt.Errorf("mapping %s port: gateway mapped public %d to %d; %s needs them equal", ProtoName(req.Op), r.External, r.Internal, p.conv.Name)
	}
	return r, nil
}

// release deletes the mappings, briefly: shutdown must not hang.
func (p *Provider) release(held provider.Lease) {
	if !held.Held() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := NewClient(p.env.Dialer, p.gateway, p.env.Log)
	c.Attempts = 3
	defer c.Close()
	done := map[uint16]bool{}
	for _, port := range held.Ports {
		internal := port.Local
		if p.zeroInternal() {
			internal = 0
		}
		if done[internal] {
			continue
		}
		done[internal] = true
		for _, op := range []uint8{OpMapTCP, OpMapUDP} {
			if _, err := c.Map(ctx, MapRequest{Op: op, Internal: internal}); err != nil {
				p.env.Log.Warn("releasing port mapping", "proto", ProtoName(op), "err", err)
				return
			}
		}
	}
	p.env.Log.Info("port mapping released", "ports", held.PublicPorts())
}

// mapMany maps count ports into lease (mapAll asked the public address), as gluetun asks Proton for several: port i on
// internal port 56789+i (the held one's, on renewals) with the public port
// held or last used suggested; the gateway picks the public ports, which
// differ from the internal ones. Each is TCP and UDP on one public port
// where the gateway allows, else each protocol on its own.
func (p *Provider) mapMany(ctx context.Context, held, lease provider.Lease) (provider.Lease, error) {
	life := uint32(p.life / time.Second)
	got := life
	ops := [2]uint8{OpMapTCP, OpMapUDP}
	if p.conv.UDPFirst {
		ops = [2]uint8{OpMapUDP, OpMapTCP}
	}
	for i := range p.count {
		internal, suggest := uint16(multiBase+i), uint16(0)
		switch {
		case i < len(held.Ports):
			internal, suggest = held.Ports[i].Local, held.Ports[i].Public
		case i < len(p.env.LastPorts):
			suggest = p.env.LastPorts[i]
		}
		first, err := p.mapOne(ctx, MapRequest{Op: ops[0], Internal: internal, External: suggest, Lifetime: life})
		if err != nil {
			return lease, fmt.Errorf("port %d of %d: %w", i+1, p.count, err)
		}
		local := first.Internal
		if local == 0 {
			local = internal
		}
		second, err := p.mapOne(ctx, MapRequest{Op: ops[1], Internal: local, External: first.External, Lifetime: life})
		if err != nil {
			return lease, fmt.Errorf("port %d of %d: %w", i+1, p.count, err)
		}
		if second.External == first.External {
			lease.Ports = append(lease.Ports, provider.Port{Public: first.External, Local: local})
		} else {
			lease.Ports = append(lease.Ports,
				provider.Port{Public: first.External, Local: local, Protocol: ProtoName(ops[0])},
				provider.Port{Public: second.External, Local: local, Protocol: ProtoName(ops[1])})
		}
		got = min(got, first.Lifetime, second.Lifetime)
	}
	now := time.Now()
	lease.Renewed, lease.Expires = now, now.Add(time.Duration(got)*time.Second)
	if got < life {
		p.life = time.Duration(max(got, 2)) * time.Second
	}
	return lease, nil
}
