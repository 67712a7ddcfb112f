package natpmp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestWireRoundTrip(t *testing.T) {
	req := MapRequest{Op: OpMapTCP, Internal: 51413, External: 51414, Lifetime: 60}
	b := req.Marshal()
	want := []byte{0, 2, 0, 0, 0xc8, 0xd5, 0xc8, 0xd6, 0, 0, 0, 60}
	if !bytes.Equal(b, want) {
		t.Fatalf("request % x, want % x", b, want)
	}
	op, got, err := ParseRequest(b)
	if err != nil || op != OpMapTCP || got != req {
		t.Fatalf("ParseRequest: %v %+v %v", op, got, err)
	}
	rep := MapReply{Op: OpMapUDP, Epoch: 1234, Internal: 1, External: 2, Lifetime: 3}
	r, err := ParseMapReply(rep.Marshal(0), OpMapUDP)
	if err != nil || r != rep {
		t.Fatalf("ParseMapReply: %+v %v", r, err)
	}
	ext := ExternalReply{Epoch: 9, Addr: netip.MustParseAddr("203.0.113.1")}
	e, err := ParseExternalReply(ext.Marshal(0))
	if err != nil || e != ext {
		t.Fatalf("ParseExternalReply: %+v %v", e, err)
	}
}

func TestParseReplyErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		op   uint8
		code uint16 // ResultError code expected, or 0 for another error
	}{
		{"unsupported version, 8 bytes", []byte{0, 130, 0, 1, 0, 0, 0, 5}, OpMapTCP, 1},
		{"not authorized, short", []byte{0, 129, 0, 2}, OpMapUDP, 2},
		{"out of resources", MapReply{Op: OpMapTCP}.Marshal(4), OpMapTCP, 4},
		{"truncated success", []byte{0, 130, 0, 0, 0, 0, 0, 1, 0}, OpMapTCP, 0},
		{"wrong opcode", MapReply{Op: OpMapUDP}.Marshal(0), OpMapTCP, 0},
		{"wrong version", []byte{2, 130, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, OpMapTCP, 0},
		{"empty", nil, OpMapTCP, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMapReply(tt.b, tt.op)
			if err == nil {
				t.Fatal("no error")
			}
			var re ResultError
			if tt.code != 0 && (!errors.As(err, &re) || re.Code != tt.code) {
				t.Fatalf("error %v, want result %d", err, tt.code)
			}
		})
	}
}

func FuzzParseReplies(f *testing.F) {
	f.Add(MapReply{Op: OpMapTCP, External: 5}.Marshal(0))
	f.Add([]byte{0, 128, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})
	f.Add([]byte{0, 130, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, op := range []uint8{OpMapUDP, OpMapTCP} {
			if r, err := ParseMapReply(b, op); err == nil {
				if len(b) < 16 || r.Op != op {
					t.Fatalf("accepted %d bytes as %+v", len(b), r)
				}
			}
		}
		if _, err := ParseExternalReply(b); err == nil && len(b) < 12 {
			t.Fatalf("accepted %d bytes", len(b))
		}
		ParseRequest(b)
	})
}

func BenchmarkParseMapReply(b *testing.B) {
	msg := MapReply{Op: OpMapTCP, Epoch: 1, Internal: 2, External: 3, Lifetime: 60}.Marshal(0)
	for i := 0; i < b.N; i++ {
		if _, err := ParseMapReply(msg, OpMapTCP); err != nil {
			b.Fatal(err)
		}
	}
}
