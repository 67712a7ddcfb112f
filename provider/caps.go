package provider

// Caps are the optional interfaces a Provider implements beside Run,
// found once by CapsOf so that no other package asserts them: each field
// is the provider itself seen through that interface, or nil when it
// lacks it.
type Caps struct {
	// TunnelMaker makes the WireGuard configuration (PIA).
	TunnelMaker TunnelMaker
	// Rekeyer registers a fresh key when the tunnel stays dead (PIA).
	Rekeyer Rekeyer
	// Mover gets a port on the new server after a move between wg-quick
	// files (NAT-PMP).
	Mover Mover
	// Guarded has control endpoints no local program may reach.
	Guarded Guarded
	// Prober has the tunnel's liveness check.
	Prober Prober
	// Refresher renews at once when asked.
	Refresher Refresher
}

// CapsOf finds p's optional interfaces. A provider's capabilities do not
// change while it runs, so callers find them once and keep them.
func CapsOf(p Provider) Caps {
	var c Caps
	c.TunnelMaker, _ = p.(TunnelMaker)
	c.Rekeyer, _ = p.(Rekeyer)
	c.Mover, _ = p.(Mover)
	c.Guarded, _ = p.(Guarded)
	c.Prober, _ = p.(Prober)
	c.Refresher, _ = p.(Refresher)
	return c
}

// ControlEndpoints is the provider's control endpoints, none when it is
// not Guarded.
func (c Caps) ControlEndpoints() []Endpoint {
	if c.Guarded == nil {
		return nil
	}
	return c.Guarded.ControlEndpoints()
}
