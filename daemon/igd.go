package daemon

import (
	"net"

	"github.com/vpnfwd/vpnfwd/upnp"
)

// igdResponder is the UPnP IGD of tun mode's namespace (or exec's): its
// SSDP socket (the namespace's M-SEARCH to 239.255.255.250:1900, or any
// address's 1900, is taken there) and its HTTP listener on an ephemeral
// port of every address (an app bound to its interface reaches it at
// that interface's address), which an nftables table and the server
// itself keep to this namespace's own connections.
type igdResponder struct {
	srv  *upnp.Server
	l    net.Listener
	pc   net.PacketConn
	undo func() // removes what the sockets needed (tun mode's tables); nil: nothing
}

// close stops the IGD and removes its tables (nothing on a nil
// *igdResponder).
func (g *igdResponder) close() {
	if g == nil {
		return
	}
	g.l.Close()
	g.pc.Close()
	if g.undo != nil {
		g.undo()
	}
}
