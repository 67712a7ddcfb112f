package portmap

import (
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Reading the kernel's socket tables is not free: /proc/net/tcp walks
// the whole TCP hash, which a network namespace shares with the host (a
// review measured 17 ms for tcp and 48 ms for tcp6 on a host with a
// 262,144-entry hash), and the responder answers one request at a time.
// A program sending map requests from a few sockets at their allowed
// rate kept the responder reading tables and left apps unanswered. So
// the tables are read at most once per refresh interval, whatever asks.

// CachedSockets is the Sockets of the tables in Dir, read at most every TTL (1 s if
// zero): Listening from the last reading of all four tables, UDPOwner
// from the last reading of the UDP tables, read again early (at most
// every 100 ms) when a socket asked about is not in it (an app's socket
// made a moment ago).
type CachedSockets struct {
	Dir string
	TTL time.Duration

	mu         sync.Mutex
	listenAt   time.Time
	listening  map[uint16]bool
	udpAt      time.Time
	udpMissAt  time.Time
	udpByAddr  map[netip.AddrPort]uint32
	udpAnyAddr map[uint16]uint32 // sockets bound to every address, by port
}

func (c *CachedSockets) ttl() time.Duration {
	if c.TTL <= 0 {
		return time.Second
	}
	return c.TTL
}

// Listening implements Sockets.
func (c *CachedSockets) Listening(port uint16) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listening == nil || time.Since(c.listenAt) > c.ttl() {
		c.readListening()
	}
	return c.listening[port]
}

// UDPOwner implements Sockets.
func (c *CachedSockets) UDPOwner(a netip.AddrPort) (uint32, bool) {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.udpByAddr == nil || time.Since(c.udpAt) > c.ttl() {
		c.readUDP()
	}
	uid, ok := c.udpLookup(a)
	if !ok && time.Since(c.udpMissAt) > 100*time.Millisecond && time.Since(c.udpAt) > 10*time.Millisecond {
		c.udpMissAt = time.Now()
		c.readUDP()
		uid, ok = c.udpLookup(a)
	}
	return uid, ok
}

// TCPOwner reads the TCP tables for one connection (ProcSockets'): the
// IGD asks once per request, and its connections are capped.
func (c *CachedSockets) TCPOwner(local, remote netip.AddrPort) (uint32, bool) {
	return ProcSockets(c.Dir).TCPOwner(local, remote)
}

func (c *CachedSockets) udpLookup(a netip.AddrPort) (uint32, bool) {
	if uid, ok := c.udpByAddr[a]; ok {
		return uid, true
	}
	uid, ok := c.udpAnyAddr[a.Port()]
	return uid, ok
}

// readListening reads the four tables: TCP sockets in LISTEN and every
// bound UDP socket.
func (c *CachedSockets) readListening() {
	c.listening = map[uint16]bool{}
	for _, t := range []struct {
		file   string
		listen bool
	}{{"tcp", true}, {"tcp6", true}, {"udp", false}, {"udp6", false}} {
		b, err := readSmall(filepath.Join(c.Dir, t.file))
		if err != nil {
			continue
		}
		lines(b, func(f [][]byte) bool {
			if local, ok := procAddr(f[1]); ok && (!t.listen || string(f[3]) == tcpListen) {
				c.listening[local.Port()] = true
			}
			return false
		})
	}
	c.listenAt = time.Now()
}

// readUDP reads the UDP tables' sockets and their users.
func (c *CachedSockets) readUDP() {
	c.udpByAddr, c.udpAnyAddr = map[netip.AddrPort]uint32{}, map[uint16]uint32{}
	for _, file := range []string{"udp", "udp6"} {
		b, err := readSmall(filepath.Join(c.Dir, file))
		if err != nil {
			continue
		}
		lines(b, func(f [][]byte) bool {
			local, ok := procAddr(f[1])
			u, err := strconv.ParseUint(string(f[7]), 10, 32)
			if !ok || err != nil {
				return false
			}
			if local.Addr().IsUnspecified() {
				c.udpAnyAddr[local.Port()] = uint32(u)
			} else {
				c.udpByAddr[local] = uint32(u)
			}
			return false
		})
	}
	c.udpAt = time.Now()
}
