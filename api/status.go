// Package api is vpnfwd's control API: status, the forwarded port (also in
// gluetun's shape, so existing port-sync sidecars work), server-sent events,
// Prometheus metrics and a health check. It knows nothing of gVisor: it
// renders what a Source says (package status holds those facts and the
// health rule) and the session's events (package session).
package api

import "github.com/vpnfwd/vpnfwd/status"

// Source gives the current status.
type Source interface{ Status() status.Status }
