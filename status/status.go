// Package status holds vpnfwd's state as users see it (GET /v1/status,
// `vpnfwd status --json`, leak-check's input) and the health rule over
// it: facts the daemon gathers and the API, the CLI and leak-check render
// or read. It imports nothing of vpnfwd's: every package may use it.
package status

import (
	"fmt"
	"time"
)

// Status is the answer of GET /v1/status (and `vpnfwd status --json`).
type Status struct {
	State   string    `json:"state"` // starting, connecting, up, down, stopping
	Version string    `json:"version"`
	Since   time.Time `json:"since"`
	Tunnel  Tunnel    `json:"tunnel"`
	Port    Port      `json:"port"`
	Forward Forward   `json:"forward"`
	Proxy   Proxy     `json:"proxy"`
	// AppMappings are the ports apps in the namespace asked for by
	// NAT-PMP or PCP (tun mode, exec) and were given.
	AppMappings []AppMapping `json:"app_mappings,omitempty"`
	// LocalForwards are the local forwards (--local-forward).
	LocalForwards []LocalForward `json:"local_forwards,omitempty"`
	// DNS is where the DNS forwarder answers ("" when off).
	DNS        string     `json:"dns,omitempty"`
	KillSwitch KillSwitch `json:"killswitch"`
	Publish    []Consumer `json:"publish"`
	// PublicIP is what --public-ip-url last said (nil: not asked).
	PublicIP *PublicIP `json:"public_ip,omitempty"`
	Memory   Memory    `json:"memory"`
}

// Memory is the process's memory as the Go runtime counts it.
type Memory struct {
	HeapLive uint64 `json:"heap_live_bytes"` // reachable at the last garbage collection: buffers and state
	Held     uint64 `json:"held_bytes"`      // mapped from the system and not handed back
}

// KillSwitch says whether vpnfwd runs with its kill switch.
type KillSwitch struct {
	Enabled  bool   `json:"enabled"`
	Table    string `json:"table,omitempty"`
	Lockdown bool   `json:"lockdown"`
	Scope    string `json:"scope,omitempty"`
}

// Tunnel describes the WireGuard tunnel.
type Tunnel struct {
	State string `json:"state"`
	// Mode is the data plane: "netstack" (apps use the proxies), "tun"
	// (a kernel TUN routes this network namespace) or "exec" (a TUN in
	// CMD's own namespace). Device names the kernel TUN.
	Mode     string `json:"mode"`
	Device   string `json:"device,omitempty"`
	Endpoint string `json:"endpoint"`
	// Server names the server in use when a server list chose it
	// (hostname and city).
	Server        string    `json:"server,omitempty"`
	Addresses     []string  `json:"addresses"`
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       uint64    `json:"rx_bytes"`
	TxBytes       uint64    `json:"tx_bytes"`
	// DownSince is when the liveness checks started failing (while down).
	DownSince time.Time `json:"down_since,omitzero"`
	// LastRecovery is the last recovery step taken.
	LastRecovery  string `json:"last_recovery,omitempty"`
	Rehandshakes  int64  `json:"rehandshakes"`   // fresh handshakes forced
	Failovers     int64  `json:"failovers"`      // moves to another server (PIA: fresh keys registered)
	Remaps        int64  `json:"remaps"`         // ports mapped again after a gateway restart
	Recoveries    int64  `json:"recoveries"`     // outages recovered from
	ProbeFailures int64  `json:"probe_failures"` // liveness checks that failed
	// FailedChecks is how many checks in a row got nothing back: while
	// any did, the tunnel is suspect and /healthz answers 503.
	FailedChecks int `json:"failed_checks"`
}

// PublicIP is the tunnel's public address as an IP-echo service
// (--public-ip-url, ipinfo.io's JSON) saw it, in gluetun's fields
// (models.PublicIP).
type PublicIP struct {
	IP           string `json:"public_ip"`
	Region       string `json:"region,omitempty"`
	Country      string `json:"country,omitempty"`
	City         string `json:"city,omitempty"`
	Hostname     string `json:"hostname,omitempty"`
	Location     string `json:"location,omitempty"`
	Organization string `json:"organization,omitempty"`
	PostalCode   string `json:"postal_code,omitempty"`
	Timezone     string `json:"timezone,omitempty"`
}

// Port describes the forwarded port.
type Port struct {
	Provider    string    `json:"provider"`
	PublicIP    string    `json:"public_ip,omitempty"`
	Port        int       `json:"port,omitempty"`
	Ports       []int     `json:"ports"`
	ListenPorts []int     `json:"listen_ports"`
	Protocols   []string  `json:"protocols"`
	Expires     time.Time `json:"expires,omitzero"`
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	Error       string    `json:"error,omitempty"`
	// Verified is when the port was last proven forwarded, VerifiedBy
	// how ("mapping re-asserted with the gateway", "lease renewed with
	// the provider", the outside check). Held is not verified: a held
	// port that nothing has proven yet has no Verified.
	Verified   time.Time `json:"verified,omitzero"`
	VerifiedBy string    `json:"verified_by,omitempty"`
	// Dead, when set, says why the held port is known not to work (since
	// DeadSince); recovery is under way and /healthz answers 503.
	Dead      string    `json:"dead,omitempty"`
	DeadSince time.Time `json:"dead_since,omitzero"`
	// Outside is the outside port check's last answer (open, closed,
	// unknown; empty when off or not run yet), OutsideAt when.
	Outside   string    `json:"outside_check,omitempty"`
	OutsideAt time.Time `json:"outside_check_at,omitzero"`
}

// Forward describes the bridge to the local service.
type Forward struct {
	Target     string   `json:"target"`
	Protocols  []string `json:"protocols"`
	TCPOpen    int64    `json:"tcp_open"`
	TCPTotal   int64    `json:"tcp_total"`
	TCPRefused int64    `json:"tcp_refused"`
	// TCPEvicted were closed to make room for newcomers, or idle too long.
	TCPEvicted int64 `json:"tcp_evicted"`
	// TCPPending handshakes are in progress; SYNDropped were ignored over
	// the pending bounds; HandshakesFailed never completed (scans, RSTs).
	TCPPending        int64  `json:"tcp_pending"`
	SYNDropped        uint64 `json:"syn_dropped"`
	HandshakesEvicted uint64 `json:"handshakes_evicted"` // half-open, aborted to make room
	HandshakesFailed  uint64 `json:"handshakes_failed"`
	UDPFlows          int64  `json:"udp_flows"`
	UDPPackets        int64  `json:"udp_packets"`
	UDPRefused        int64  `json:"udp_refused"` // from new peers over the new-flow rate
	UDPDropped        uint64 `json:"udp_dropped"` // from the tunnel, not read in time (netstack's receive buffers full)
	BytesIn           uint64 `json:"bytes_in"`
	BytesOut          uint64 `json:"bytes_out"`
}

// AppMapping is one app's port mapping: the app's own port, the
// public port it was given, who asked and how, and until when.
type AppMapping struct {
	Protocol     string    `json:"protocol"`
	InternalPort int       `json:"internal_port"`
	PublicPort   int       `json:"public_port"`
	Client       string    `json:"client"`
	Via          string    `json:"via"` // nat-pmp, pcp or upnp
	Expires      time.Time `json:"expires"`
}

// LocalForward is one local forward: where it listens, where its
// connections go through the tunnel, and its counters.
type LocalForward struct {
	Listen   string `json:"listen"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Open     int64  `json:"open"`    // TCP connections, or UDP flows
	Total    int64  `json:"total"`   // since start
	Failed   int64  `json:"failed"`  // dials or lookups through the tunnel that failed
	Refused  int64  `json:"refused"` // not forwarded: client not allowed, over a cap, or a destination reserved for vpnfwd
	BytesOut uint64 `json:"bytes_out"`
	BytesIn  uint64 `json:"bytes_in"`
}

// Proxy lists the outbound proxies' addresses ("" when off).
type Proxy struct {
	SOCKS5 string `json:"socks5"`
	HTTP   string `json:"http"`
}

// Healthy is true when the tunnel is up and a port is held and not known
// dead.
func (s Status) Healthy() bool { return s.Unhealthy() == "" }

// Unhealthy says why the status is not healthy ("" when it is).
func (s Status) Unhealthy() string {
	switch {
	case s.Tunnel.State != "up":
		return "tunnel " + s.Tunnel.State
	case s.Tunnel.FailedChecks > 0:
		return "the last liveness check through the tunnel got nothing back"
	case s.Port.Port == 0 && s.Port.Error != "":
		return "no forwarded port: " + s.Port.Error
	case s.Port.Port == 0:
		return "no forwarded port yet"
	case s.Port.Dead != "":
		return fmt.Sprintf("port %d is dead: %s", s.Port.Port, s.Port.Dead)
	}
	return ""
}

// Consumer is one port consumer's last delivery (a port file, a hook, a
// torrent client): what it was given, whether it took, and its counts.
type Consumer struct {
	Consumer string    `json:"consumer"`
	Ports    []uint16  `json:"ports"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
	Count    int64     `json:"count"`
	Failures int64     `json:"failures"`
}
