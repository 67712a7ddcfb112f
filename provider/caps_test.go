package provider

import (
	"context"
	"net/netip"
	"testing"
)

type plain struct{}

func (plain) Run(context.Context, func(Lease)) error { return nil }

type guardedRefresher struct{ plain }

func (guardedRefresher) ControlEndpoints() []Endpoint {
	return []Endpoint{{Network: "udp", Addr: netip.MustParseAddrPort("10.2.0.1:5351")}}
}
func (guardedRefresher) Refresh() {}

func TestCapsOf(t *testing.T) {
	c := CapsOf(plain{})
	if c != (Caps{}) || c.ControlEndpoints() != nil {
		t.Errorf("a plain provider: %+v", c)
	}
	c = CapsOf(guardedRefresher{})
	if c.Guarded == nil || c.Refresher == nil || c.Prober != nil || c.Mover != nil || c.TunnelMaker != nil || c.Rekeyer != nil {
		t.Errorf("guarded refresher: %+v", c)
	}
	if eps := c.ControlEndpoints(); len(eps) != 1 || eps[0].Addr.Port() != 5351 {
		t.Errorf("endpoints %v", eps)
	}
}
