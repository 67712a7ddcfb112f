package perfectprivacy

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestPorts(t *testing.T) {
	for in, want := range map[string][]uint16{
		"10.0.203.88": {12904, 22904, 32904}, // providers.md's example
		"10.0.0.1":    {10001, 20001, 30001},
		"10.0.15.255": {14095, 24095, 34095},
		"10.0.16.0":   {10000, 20000, 30000}, // 16*256 = 4096: low 12 bits 0
	} {
		if got := Ports(netip.MustParseAddr(in)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
	}
}
