// Package testnet holds the fakes for tests: PIA's API and a private CA.
// The in-process VPN provider they run on is package demo's (the binary
// ships it for `vpnfwd demo`); tests use it from there. The shipped
// binary never imports this package.
package testnet
