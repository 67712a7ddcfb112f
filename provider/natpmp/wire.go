// Package natpmp is a NAT-PMP (RFC 6886) client written for vpnfwd, and
// the port-forwarding provider built on it. The wire types are shared with
// the in-process test gateway.
package natpmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Port is the NAT-PMP server port on the gateway.
const Port = 5351

// Opcodes.
const (
	OpExternal = 0
	OpMapUDP   = 1
	OpMapTCP   = 2
)

// Result codes (RFC 6886 section 3.5).
const (
	ResultSuccess            = 0
	ResultUnsupportedVersion = 1
	ResultNotAuthorized      = 2
	ResultNetworkFailure     = 3
	ResultOutOfResources     = 4
	ResultUnsupportedOpcode  = 5
)

// ResultError is a reply with a non-zero result code.
type ResultError struct{ Code uint16 }

func (e ResultError) Error() string {
	names := map[uint16]string{
		1: "unsupported version", 2: "not authorized/refused", 3: "network failure",
		4: "out of resources", 5: "unsupported opcode",
	}
	if n, ok := names[e.Code]; ok {
		return fmt.Sprintf("NAT-PMP result %d (%s)", e.Code, n)
	}
	return fmt.Sprintf("NAT-PMP result %d", e.Code)
}

// ProtoName names a mapping opcode.
func ProtoName(op uint8) string {
	if op == OpMapTCP {
		return "tcp"
	}
	return "udp"
}

// ExternalReply answers an external address request.
type ExternalReply struct {
	Epoch uint32
	Addr  netip.Addr
}

// MapRequest asks for a mapping (Lifetime 0 deletes it).
type MapRequest struct {
	Op       uint8 // OpMapUDP or OpMapTCP
	Internal uint16
	External uint16 // suggested
	Lifetime uint32
}

// MapReply is the gateway's answer to a MapRequest.
type MapReply struct {
	Op       uint8
	Epoch    uint32
	Internal uint16
	External uint16
	Lifetime uint32
}

// Marshal encodes the request (12 bytes).
func (r MapRequest) Marshal() []byte {
	b := make([]byte, 12)
	b[1] = r.Op
	binary.BigEndian.PutUint16(b[4:], r.Internal)
	binary.BigEndian.PutUint16(b[6:], r.External)
	binary.BigEndian.PutUint32(b[8:], r.Lifetime)
	return b
}

// Marshal encodes the reply (16 bytes); result is the result code.
func (r MapReply) Marshal(result uint16) []byte {
	b := make([]byte, 16)
	b[1] = 128 + r.Op
	binary.BigEndian.PutUint16(b[2:], result)
	binary.BigEndian.PutUint32(b[4:], r.Epoch)
	binary.BigEndian.PutUint16(b[8:], r.Internal)
	binary.BigEndian.PutUint16(b[10:], r.External)
	binary.BigEndian.PutUint32(b[12:], r.Lifetime)
	return b
}

// Marshal encodes the reply (12 bytes).
func (r ExternalReply) Marshal(result uint16) []byte {
	b := make([]byte, 12)
	b[1] = 128 + OpExternal
	binary.BigEndian.PutUint16(b[2:], result)
	binary.BigEndian.PutUint32(b[4:], r.Epoch)
	a := r.Addr.As4()
	copy(b[8:], a[:])
	return b
}

var errShort = errors.New("NAT-PMP reply too short")

// header checks version, opcode and result, in that order, before the size:
// an error reply may be shorter than a success reply.
func header(b []byte, op uint8) (epoch uint32, err error) {
	if len(b) < 4 {
		return 0, errShort
	}
	if b[0] != 0 {
		return 0, fmt.Errorf("NAT-PMP reply has version %d, want 0", b[0])
	}
	if b[1] != 128+op {
		return 0, fmt.Errorf("NAT-PMP reply opcode %d, want %d", b[1], 128+op)
	}
	if rc := binary.BigEndian.Uint16(b[2:]); rc != ResultSuccess {
		return 0, ResultError{rc}
	}
	if len(b) < 8 {
		return 0, errShort
	}
	return binary.BigEndian.Uint32(b[4:]), nil
}

// ParseExternalReply decodes an external address reply.
func ParseExternalReply(b []byte) (ExternalReply, error) {
	epoch, err := header(b, OpExternal)
	if err != nil {
		return ExternalReply{}, err
	}
	if len(b) < 12 {
		return ExternalReply{}, errShort
	}
	return ExternalReply{Epoch: epoch, Addr: netip.AddrFrom4([4]byte(b[8:12]))}, nil
}

// ParseMapReply decodes a mapping reply for opcode op.
func ParseMapReply(b []byte, op uint8) (MapReply, error) {
	epoch, err := header(b, op)
	if err != nil {
		return MapReply{}, err
	}
	if len(b) < 16 {
		return MapReply{}, errShort
	}
	return MapReply{
		Op:       op,
		Epoch:    epoch,
		Internal: binary.BigEndian.Uint16(b[8:]),
		External: binary.BigEndian.Uint16(b[10:]),
		Lifetime: binary.BigEndian.Uint32(b[12:]),
	}, nil
}

// ParseRequest decodes a request as a gateway sees it: op is the opcode;
// for OpExternal the MapRequest is empty.
func ParseRequest(b []byte) (op uint8, req MapRequest, err error) {
	if len(b) < 2 {
		return 0, req, errShort
	}
	if b[0] != 0 {
		return b[1], req, ResultError{ResultUnsupportedVersion}
	}
	op = b[1]
	switch op {
	case OpExternal:
		return op, req, nil
	case OpMapUDP, OpMapTCP:
		if len(b) < 12 {
			return op, req, errShort
		}
		return op, MapRequest{
			Op:       op,
			Internal: binary.BigEndian.Uint16(b[4:]),
			External: binary.BigEndian.Uint16(b[6:]),
			Lifetime: binary.BigEndian.Uint32(b[8:]),
		}, nil
	}
	return op, req, ResultError{ResultUnsupportedOpcode}
}
