package session

import (
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/status"
)

// PortStatus is a lease and its health as status and the event stream
// show them.
func PortStatus(l provider.Lease, h PortHealth) status.Port {
	p := status.Port{Provider: l.Provider, Ports: []int{}, ListenPorts: []int{},
		Protocols: l.Protocols, Expires: l.Expires, LastRenewal: l.Renewed, Error: l.Error}
	if l.Held() {
		p.Verified, p.VerifiedBy, p.Dead, p.DeadSince, p.Outside, p.OutsideAt = h.Verified, h.VerifiedBy, h.Dead, h.DeadSince, h.Outside, h.OutsideAt
	}
	if l.PublicIP.IsValid() {
		p.PublicIP = l.PublicIP.String()
	}
	for _, port := range l.Ports {
		p.Ports = append(p.Ports, int(port.Public))
		p.ListenPorts = append(p.ListenPorts, int(port.Local))
	}
	if len(p.Ports) > 0 {
		p.Port = p.Ports[0]
	}
	return p
}

// Status is the session's part of what users see: the state, the
// tunnel's counters and recovery, and the port status reports.
func (s Snapshot) Status() (string, status.Tunnel, status.Port) {
	t := status.Tunnel{
		State: string(s.TunnelState()), Endpoint: s.Endpoint.String(),
		LastHandshake: s.Tunnel.LastHandshake, RxBytes: s.Tunnel.RxBytes, TxBytes: s.Tunnel.TxBytes,
		DownSince: s.DownSince, LastRecovery: s.LastRecovery,
		Rehandshakes: s.Rehandshakes, Failovers: s.Failovers, Remaps: s.Remaps, Recoveries: s.Recoveries, ProbeFailures: s.ProbeFailures, FailedChecks: s.FailedChecks,
	}
	return string(s.State), t, PortStatus(s.Reported())
}
