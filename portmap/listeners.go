package portmap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
)

// Who holds a held port is decided by the namespace's own sockets: a
// program that listens on a port (TCP) or has a UDP socket bound to it
// keeps what arrives there, and a mapping that would send that port's
// traffic to another program is refused (as miniupnpd's secure_mode
// keeps a client from mapping to anyone but itself). The kernel's socket
// tables are read from /proc/net (or /proc/PID/net for another
// namespace: exec's sandbox).

// Sockets tells the responder about the namespace's sockets.
type Sockets interface {
	// Listening says whether a program listens on port (TCP) or has a
	// UDP socket bound to it.
	Listening(port uint16) bool
	// UDPOwner is the uid of the UDP socket bound to a (a requesting
	// app's); ok is false when there is none (it was closed).
	UDPOwner(a netip.AddrPort) (uid uint32, ok bool)
}

// ProcSockets is the directory of the kernel's socket tables (/proc/net,
// or /proc/PID/net for the namespace PID is in): TCPOwner reads it for
// one connection; CachedSockets reads it for the responder.
type ProcSockets string

// noSockets is the Sockets of a namespace nothing is known of (tests):
// no program listens, and every requesting socket is open and root's.
type noSockets struct{}

func (noSockets) Listening(uint16) bool                  { return false }
func (noSockets) UDPOwner(netip.AddrPort) (uint32, bool) { return 0, true }

// readSmall reads a /proc table, at most 16 MiB (some 100,000 sockets).
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 16<<20))
}

// tcpListen is the kernel's TCP_LISTEN state as /proc/net/tcp writes it.
const tcpListen = "0A"

// lines calls f with the fields of each line of a /proc/net table
// after its header, until f returns true.
func lines(b []byte, f func(fields [][]byte) bool) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 4096)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		if fs := bytes.Fields(sc.Bytes()); len(fs) >= 8 && f(fs) {
			return true
		}
	}
	return false
}

// procAddr parses a table's "HEX:PORT" (the address as the kernel's
// 32-bit words in host order: little-endian here).
func procAddr(f []byte) (netip.AddrPort, bool) {
	i := bytes.LastIndexByte(f, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	p, err := strconv.ParseUint(string(f[i+1:]), 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(string(f[:i]))
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for w := 0; w+4 <= len(raw); w += 4 {
		binary.BigEndian.PutUint32(raw[w:], binary.LittleEndian.Uint32(raw[w:]))
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), true
}

// TCPOwner is the uid of the TCP socket at local connected to remote (an
// IGD client's connection to vpnfwd); ok is false when there is none.
func (d ProcSockets) TCPOwner(local, remote netip.AddrPort) (uint32, bool) {
	for _, file := range []string{"tcp", "tcp6"} {
		b, err := readSmall(filepath.Join(string(d), file))
		if err != nil {
			continue
		}
		if uid, ok := tcpOwner(b, local, remote); ok {
			return uid, true
		}
	}
	return 0, false
}

// tcpOwner finds the TCP socket from local to remote in table b and
// returns its uid.
func tcpOwner(b []byte, local, remote netip.AddrPort) (uint32, bool) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	var uid uint32
	found := lines(b, func(f [][]byte) bool {
		l, ok1 := procAddr(f[1])
		r, ok2 := procAddr(f[2])
		if !ok1 || !ok2 || l != local || r != remote {
			return false
		}
		u, err := strconv.ParseUint(string(f[7]), 10, 32)
		uid = uint32(u)
		return err == nil
	})
	return uid, found
}
