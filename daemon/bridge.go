package daemon

import (
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/provider"
)

// bridgePath is the bridge from the forwarded ports, on the data plane,
// to the local service: netstack mode's, and tun mode's with a service
// on loopback.
type bridgePath struct {
	b      *forward.Bridge
	target target
	log    *slog.Logger
}

// newBridge makes the bridge from the forwarded port, on the data plane
// in, to the local service.
func newBridge(in forward.PacketListener, f config.Forward, t target, log *slog.Logger) *bridgePath {
	b := forward.NewBridge(in, forward.BridgeConfig{
		TargetHost:  t.host,
		TCP:         hasProto(f.Protocols, "tcp"),
		UDP:         hasProto(f.Protocols, "udp"),
		UDPIdle:     time.Duration(f.UDPIdle),
		MaxUDPFlows: f.MaxUDPFlows, MaxUDPFlowsPerSource: f.MaxUDPFlowsPerSource,
		MaxConns: f.MaxConnections, MaxConnsPerSource: f.MaxConnectionsPerSource,
		IdleTimeout: time.Duration(f.IdleTimeout),
		PerPeer:     f.PerPeerSource,
		Log:         log.With("component", "forward"),
	})
	return &bridgePath{b: b, target: t, log: log}
}

// setPorts points the bridge at the lease's ports (none: it stops
// listening).
func (p *bridgePath) setPorts(l provider.Lease, offer func(provider.Lease)) {
	if !l.Held() {
		p.b.SetRoutes(nil)
		return
	}
	offer(l)
	var routes []forward.Route
	for _, port := range l.Ports {
		routes = append(routes, forward.Route{Listen: port.Local, Target: p.target.to(port.Public), Proto: port.Protocol})
	}
	if err := p.b.SetRoutes(routes); err != nil {
		p.log.Error("listening on the forwarded port", "err", err)
	}
	for _, r := range routes {
		p.log.Info("listening", "tunnel_port", r.Listen,
			"target", net.JoinHostPort(p.target.host, strconv.Itoa(int(r.Target))), "protocols", p.target.protocols)
		if w := forward.LoopbackTrustWarning(p.target.host, r.Target); w != "" {
			p.log.Warn(w)
		}
	}
}

// setApps: the bridge serves every held port itself (the responder
// offers apps none).
func (p *bridgePath) setApps([]portmap.Mapping) {}

func (p *bridgePath) stats() forward.Stats { return p.b.Stats() }

func (p *bridgePath) close() { p.b.Close() }
