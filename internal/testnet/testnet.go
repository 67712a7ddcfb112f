// Package testnet holds the fakes for tests: PIA's API, a private CA, and
// (re-exported from package demo, which the binary ships for `vpnfwd
// demo`) the in-process VPN provider. The shipped binary never imports it.
package testnet

import "github.com/vpnfwd/vpnfwd/demo"

// The in-process VPN provider (package demo).
type (
	Server  = demo.Server
	Options = demo.Options
	Gateway = demo.Gateway
	Client  = demo.Client
)

// Start brings an in-process VPN server up (demo.Start).
func Start(opts Options) (*Server, error) { return demo.Start(opts) }

// WGQuick renders a client configuration as a wg-quick file.
var WGQuick = demo.WGQuick

// Addresses and names of the simulated network.
var (
	GatewayAddr  = demo.GatewayAddr
	ClientAddr   = demo.ClientAddr
	InternetHost = demo.InternetHost
	PublicIP     = demo.PublicIP
	GatewayAddr6 = demo.GatewayAddr6
	PublicBind   = demo.PublicBind
)

const (
	WhatsMyIPName = demo.WhatsMyIPName
	EchoName      = demo.EchoName
	BigName       = demo.BigName
)
