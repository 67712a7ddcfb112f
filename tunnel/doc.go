// Package tunnel holds the WireGuard tunnel's types that the configuration,
// the providers and the device share: keys (private ones print as
// [redacted]), address prefixes, endpoints and the tunnel description
// itself. It depends on nothing of vpnfwd's.
package tunnel
