package portmap

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"
)

// Port is where NAT-PMP and PCP servers listen (RFC 6886, RFC 6887).
const Port = 5351

// NAT-PMP result codes (RFC 6886 section 3.5).
const (
	pmpSuccess        = 0
	pmpUnsupportedVer = 1
	pmpRefused        = 2
	pmpNetworkFailure = 3
	pmpNoResources    = 4
	pmpUnsupportedOp  = 5
)

// PCP opcodes, result codes and options (RFC 6887 sections 7.4, 19.2, 19.3).
const (
	pcpVersion = 2

	opAnnounce = 0
	opMap      = 1

	pcpSuccess        = 0
	pcpUnsuppVersion  = 1
	pcpNotAuthorized  = 2
	pcpMalformedReq   = 3
	pcpUnsuppOpcode   = 4
	pcpUnsuppOption   = 5
	pcpMalformedOpt   = 6
	pcpNetworkFailure = 7
	pcpNoResources    = 8
	pcpUnsuppProtocol = 9
	pcpCannotProvide  = 11
	pcpAddrMismatch   = 12

	optThirdParty    = 1
	optPreferFailure = 2

	pcpMaxLen = 1100
)

// Lifetimes of PCP error responses (RFC 6887 section 7.2: how long the
// client may assume the same answer): short for what may change soon,
// long for what will not.
const (
	shortError = 30
	longError  = 1800
)

// Serve answers requests on pc until it is closed, and expires mappings
// every second meanwhile.
func (s *Server) Serve(pc net.PacketConn) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.Expire()
			}
		}
	}()
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		if reply := s.Handle(buf[:n], ua.AddrPort()); reply != nil {
			pc.WriteTo(reply, from)
		}
	}
}

// Handle answers one request from client (nil: no answer, as the RFCs
// say for responses, runts and clients over their rate). It never
// panics on any input.
func (s *Server) Handle(req []byte, from netip.AddrPort) []byte {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if len(req) < 2 || req[1]&0x80 != 0 { // a runt, or a response
		return nil
	}
	s.mu.Lock()
	if !s.allowLocked(from) {
		s.mu.Unlock()
		return nil
	}
	var reply []byte
	switch req[0] {
	case 0:
		reply = s.natpmpLocked(req, from)
	case pcpVersion:
		reply = s.pcpLocked(req, from)
	default:
		reply = s.pcpErrorLocked(req, pcpUnsuppVersion, longError)
	}
	s.notifyLocked()
	return reply
}

// natpmpLocked answers a NAT-PMP request (RFC 6886).
func (s *Server) natpmpLocked(req []byte, from netip.AddrPort) []byte {
	op := req[1]
	head := func(result uint16, size int) []byte {
		b := make([]byte, size)
		b[1] = 128 + op
		binary.BigEndian.PutUint16(b[2:], result)
		binary.BigEndian.PutUint32(b[4:], s.epochSeconds())
		return b
	}
	switch op {
	case 0: // external address
		result := uint16(pmpSuccess)
		if !s.public.Is4() {
			result = pmpNetworkFailure
		}
		b := head(result, 12)
		if s.public.Is4() {
			a := s.public.As4()
			copy(b[8:], a[:])
		}
		return b
	case 1, 2: // map UDP, map TCP
		if len(req) < 12 {
			return nil
		}
	default:
		return head(pmpUnsupportedOp, 8)
	}
	r := request{proto: map[byte]string{1: "udp", 2: "tcp"}[op], internal: binary.BigEndian.Uint16(req[4:]),
		suggested: binary.BigEndian.Uint16(req[6:]), lifetime: time.Duration(binary.BigEndian.Uint32(req[8:])) * time.Second,
		from: from, via: "nat-pmp"}
	reply := func(result uint16, external uint16, life time.Duration) []byte {
		b := head(result, 16)
		binary.BigEndian.PutUint16(b[8:], r.internal)
		binary.BigEndian.PutUint16(b[10:], external)
		binary.BigEndian.PutUint32(b[12:], uint32(life/time.Second))
		return b
	}
	if r.lifetime == 0 { // delete (internal 0: all of this socket's of this protocol)
		if r.internal == 0 && r.suggested != 0 {
			return reply(pmpRefused, 0, 0)
		}
		if s.unmapLocked(r) == notOwner {
			return reply(pmpRefused, 0, 0) // another app's (RFC 6886 3.5: Not Authorized/Refused)
		}
		return reply(pmpSuccess, 0, 0)
	}
	if r.internal == 0 {
		return reply(pmpRefused, 0, 0) // "all ports" is not something vpnfwd can give
	}
	slot, life, g := s.mapLocked(r)
	switch g {
	case noPort:
		return reply(pmpNetworkFailure, 0, 0)
	case notOwner:
		return reply(pmpRefused, 0, 0)
	case allTaken:
		s.warnTakenLocked("an app asked for a port and every port vpnfwd holds is another app's (NAT-PMP: out of resources)", r)
		return reply(pmpNoResources, 0, 0)
	}
	return reply(pmpSuccess, slot.Public, life)
}

// pcpErrorLocked is an error response: the request copied (padded to a
// multiple of 4, at most 1100 octets) with R set, the result, the
// lifetime and the epoch, and the header's last 12 octets zero (RFC 6887
// sections 7.2 and 8.3).
func (s *Server) pcpErrorLocked(req []byte, result byte, lifetime uint32) []byte {
	n := min(len(req), pcpMaxLen)
	n = max(n+(4-n%4)%4, 24)
	b := make([]byte, n)
	copy(b, req[:min(len(req), pcpMaxLen)])
	b[0] = pcpVersion
	b[1] |= 0x80
	b[2] = 0
	b[3] = result
	binary.BigEndian.PutUint32(b[4:], lifetime)
	binary.BigEndian.PutUint32(b[8:], s.epochSeconds())
	clear(b[12:24])
	return b
}

// pcpLocked answers a PCP request (RFC 6887): ANNOUNCE and MAP; PEER and
// anything else is UNSUPP_OPCODE.
func (s *Server) pcpLocked(req []byte, from netip.AddrPort) []byte {
	client := from.Addr()
	if len(req) < 24 || len(req) > pcpMaxLen || len(req)%4 != 0 {
		return s.pcpErrorLocked(req, pcpMalformedReq, longError)
	}
	op := req[1] & 0x7f
	if op != opAnnounce && op != opMap {
		return s.pcpErrorLocked(req, pcpUnsuppOpcode, longError)
	}
	if claimed := netip.AddrFrom16([16]byte(req[8:24])).Unmap(); claimed != client {
		return s.pcpErrorLocked(req, pcpAddrMismatch, longError)
	}
	if op == opAnnounce {
		return s.pcpErrorLocked(req[:24], pcpSuccess, 0)
	}
	if len(req) < 60 {
		return s.pcpErrorLocked(req, pcpMalformedReq, longError)
	}
	strict := false
	for opts := req[60:]; len(opts) > 0; {
		if len(opts) < 4 {
			return s.pcpErrorLocked(req, pcpMalformedOpt, longError)
		}
		code, size := opts[0], int(binary.BigEndian.Uint16(opts[2:]))
		padded := 4 + size + (4-size%4)%4
		if padded > len(opts) {
			return s.pcpErrorLocked(req, pcpMalformedOpt, longError)
		}
		switch {
		case code == optPreferFailure:
			if size != 0 {
				return s.pcpErrorLocked(req, pcpMalformedOpt, longError)
			}
			strict = true
		case code < 128: // mandatory to process: THIRD_PARTY, FILTER and unknown ones
			return s.pcpErrorLocked(req, pcpUnsuppOption, longError)
		}
		opts = opts[padded:]
	}
	lifetime := time.Duration(binary.BigEndian.Uint32(req[4:])) * time.Second
	var nonce [12]byte
	copy(nonce[:], req[24:36])
	protoNum := req[36]
	internal := binary.BigEndian.Uint16(req[40:])
	suggested := binary.BigEndian.Uint16(req[42:])
	suggestedAddr := netip.AddrFrom16([16]byte(req[44:60])).Unmap()
	proto := map[byte]string{0: "", 6: "tcp", 17: "udp"}
	name, known := proto[protoNum]
	if !known {
		return s.pcpErrorLocked(req, pcpUnsuppProtocol, longError)
	}
	reply := func(result byte, life uint32, external uint16) []byte {
		b := s.pcpErrorLocked(req[:60], result, life)
		binary.BigEndian.PutUint16(b[42:], external)
		if result == pcpSuccess && s.public.IsValid() {
			ext := s.public.As16() // IPv4: IPv4-mapped, as PCP carries it
			copy(b[44:60], ext[:])
		} else if result == pcpSuccess {
			clear(b[44:60])
		}
		return b
	}
	r := request{proto: name, internal: internal, suggested: suggested, lifetime: lifetime, from: from, via: "pcp", nonce: &nonce, strict: strict}
	if lifetime == 0 { // delete; protocol 0 with internal port 0: all of this nonce's
		if protoNum == 0 {
			r.internal = 0
		}
		if s.unmapLocked(r) == notOwner {
			return s.pcpErrorLocked(req, pcpNotAuthorized, longError)
		}
		return reply(pcpSuccess, 0, 0)
	}
	if protoNum == 0 || internal == 0 { // every protocol, or every port: not vpnfwd's to give
		return s.pcpErrorLocked(req, pcpUnsuppProtocol, longError)
	}
	if strict && suggestedAddr.IsValid() && !suggestedAddr.IsUnspecified() && suggestedAddr != s.public {
		return s.pcpErrorLocked(req, pcpCannotProvide, shortError)
	}
	slot, life, g := s.mapLocked(r)
	switch g {
	case noPort:
		return s.pcpErrorLocked(req, pcpNetworkFailure, shortError)
	case allTaken:
		s.warnTakenLocked("an app asked for a port and every port vpnfwd holds is another app's (PCP: NO_RESOURCES)", r)
		return s.pcpErrorLocked(req, pcpNoResources, shortError)
	case notOwner:
		return s.pcpErrorLocked(req, pcpNotAuthorized, longError)
	case notThatPort:
		return s.pcpErrorLocked(req, pcpCannotProvide, shortError)
	}
	return reply(pcpSuccess, uint32(life/time.Second), slot.Public)
}
