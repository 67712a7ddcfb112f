package api

import (
	"fmt"
	"net/http"
	"strings"
)

// metrics writes the status in Prometheus text format (0.0.4).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	var b strings.Builder
	m := func(name, typ, help string, v any, labels ...string) {
		if !strings.Contains(b.String(), "# TYPE "+name+" ") {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		}
		l := ""
		if len(labels) > 0 {
			l = "{" + strings.Join(labels, ",") + "}"
		}
		fmt.Fprintf(&b, "%s%s %v\n", name, l, v)
	}
	b2i := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	m("vpnfwd_tunnel_up", "gauge", "1 when the WireGuard tunnel is up.", b2i(st.Tunnel.State == "up"))
	m("vpnfwd_memory_heap_live_bytes", "gauge", "Go heap reachable at the last garbage collection: vpnfwd's buffers and state.", st.Memory.HeapLive)
	m("vpnfwd_memory_held_bytes", "gauge", "Memory the Go runtime holds from the system (mapped, not handed back).", st.Memory.Held)
	if !st.Tunnel.LastHandshake.IsZero() {
		m("vpnfwd_tunnel_last_handshake_seconds", "gauge", "Unix time of the last WireGuard handshake.", st.Tunnel.LastHandshake.Unix())
	}
	m("vpnfwd_tunnel_rx_bytes_total", "counter", "Bytes received through the tunnel.", st.Tunnel.RxBytes)
	m("vpnfwd_tunnel_tx_bytes_total", "counter", "Bytes sent through the tunnel.", st.Tunnel.TxBytes)
	m("vpnfwd_tunnel_rehandshakes_total", "counter", "Fresh WireGuard handshakes forced to recover the tunnel.", st.Tunnel.Rehandshakes)
	m("vpnfwd_tunnel_failovers_total", "counter", "Moves to the next server because the tunnel, or the port, stayed dead (PIA: fresh keys registered).", st.Tunnel.Failovers)
	m("vpnfwd_port_remaps_total", "counter", "Ports mapped again because the gateway restarted and lost them.", st.Tunnel.Remaps)
	m("vpnfwd_tunnel_recoveries_total", "counter", "Tunnel outages recovered from.", st.Tunnel.Recoveries)
	m("vpnfwd_tunnel_probe_failures_total", "counter", "Liveness checks through the tunnel that failed.", st.Tunnel.ProbeFailures)
	m("vpnfwd_port_held", "gauge", "1 while a forwarded port is held.", b2i(st.Port.Port != 0))
	m("vpnfwd_port_dead", "gauge", "1 while the held port is known not to work (see /v1/status port.dead); recovery is under way.", b2i(st.Port.Dead != ""))
	if !st.Port.Verified.IsZero() {
		m("vpnfwd_port_verified_seconds", "gauge", "Unix time the held port was last proven forwarded (see port.verified_by).", st.Port.Verified.Unix())
	}
	m("vpnfwd_provider_error", "gauge", "1 while the provider's last attempt failed (see /v1/status port.error).", b2i(st.Port.Error != ""))
	m("vpnfwd_killswitch_enabled", "gauge", "1 when vpnfwd runs with its kill switch.", b2i(st.KillSwitch.Enabled))
	m("vpnfwd_forwarded_port", "gauge", "The forwarded port (0 when none).", st.Port.Port)
	if !st.Port.Expires.IsZero() {
		m("vpnfwd_port_expiry_seconds", "gauge", "Unix time the port lease expires.", st.Port.Expires.Unix())
	}
	m("vpnfwd_forward_tcp_open", "gauge", "Open bridged TCP connections.", st.Forward.TCPOpen)
	m("vpnfwd_forward_tcp_total", "counter", "Bridged TCP connections.", st.Forward.TCPTotal)
	m("vpnfwd_forward_tcp_refused_total", "counter", "Incoming connections refused because the local service was down.", st.Forward.TCPRefused)
	m("vpnfwd_forward_tcp_evicted_total", "counter", "Bridged connections closed to make room (connection bounds) or for idleness.", st.Forward.TCPEvicted)
	m("vpnfwd_forward_tcp_pending", "gauge", "Incoming TCP handshakes in progress.", st.Forward.TCPPending)
	m("vpnfwd_forward_syn_dropped_total", "counter", "SYNs ignored over the pending-handshake bounds.", st.Forward.SYNDropped)
	m("vpnfwd_forward_handshakes_evicted_total", "counter", "Half-open handshakes aborted to make room for new ones (a SYN flood).", st.Forward.HandshakesEvicted)
	m("vpnfwd_forward_handshakes_failed_total", "counter", "Incoming handshakes that never completed (scans, resets, timeouts).", st.Forward.HandshakesFailed)
	m("vpnfwd_forward_udp_flows", "gauge", "Active bridged UDP peers.", st.Forward.UDPFlows)
	m("vpnfwd_forward_udp_refused_total", "counter", "UDP datagrams from new peers dropped over the new-flow rate.", st.Forward.UDPRefused)
	m("vpnfwd_forward_udp_dropped_total", "counter", "UDP datagrams from the tunnel dropped before the bridge read them (netstack's receive buffers full).", st.Forward.UDPDropped)
	m("vpnfwd_forward_udp_packets_total", "counter", "UDP packets bridged from the tunnel.", st.Forward.UDPPackets)
	m("vpnfwd_forward_bytes_total", "counter", "Bytes bridged.", st.Forward.BytesIn, `direction="in"`)
	m("vpnfwd_forward_bytes_total", "counter", "Bytes bridged.", st.Forward.BytesOut, `direction="out"`)
	m("vpnfwd_app_mappings", "gauge", "Ports apps asked for by NAT-PMP, PCP or UPnP and were given.", len(st.AppMappings))
	for _, l := range st.LocalForwards {
		lb := fmt.Sprintf("listen=%q,to=%q,protocol=%q", l.Listen, l.To, l.Protocol)
		m("vpnfwd_local_forward_open", "gauge", "Open connections (UDP: flows) of a local forward.", l.Open, lb)
		m("vpnfwd_local_forward_total", "counter", "Connections (UDP: flows) a local forward took.", l.Total, lb)
		m("vpnfwd_local_forward_failed_total", "counter", "A local forward's dials or lookups through the tunnel that failed.", l.Failed, lb)
		m("vpnfwd_local_forward_bytes_total", "counter", "Bytes through a local forward.", l.BytesOut, lb, `direction="out"`)
		m("vpnfwd_local_forward_bytes_total", "counter", "Bytes through a local forward.", l.BytesIn, lb, `direction="in"`)
	}
	for _, p := range st.Publish {
		c := fmt.Sprintf("consumer=%q", p.Consumer)
		m("vpnfwd_publish_ok", "gauge", "1 when the consumer's last publish succeeded.", b2i(p.OK), c)
		m("vpnfwd_publish_failures_total", "counter", "Failed publishes per consumer.", p.Failures, c)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write([]byte(b.String()))
}
