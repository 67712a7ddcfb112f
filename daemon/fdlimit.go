package daemon

import (
	"cmp"
	"syscall"
)

// descriptorsAtCaps is how many descriptors vpnfwd may hold with every
// listener and the bridge at its caps: a proxied, forwarded or bridged
// connection holds two (in tun mode both ends are the kernel's), a UDP
// flow one, and some for the rest (the tunnel, DNS, the responder, logs).
func (d *Daemon) descriptorsAtCaps() int {
	n := 128
	if d.apiL != nil {
		n += localLimits.Max
	}
	for _, on := range []bool{d.socksL != nil, d.httpL != nil} {
		if on {
			n += 2 * localLimits.Max
		}
	}
	n += 2 * 256 * len(d.locals) // forward.LocalConfig's MaxConns, or MaxUDPFlows for a UDP forward
	f := d.cfg.Forward
	return n + 2*cmp.Or(f.MaxConnections, 2048) + cmp.Or(f.MaxUDPFlows, 2048)
}

// warnDescriptorLimit says at start when the descriptor limit is below
// what the caps allow: then a stranger holding one listener at its cap
// could still leave the others, or the bridge, without descriptors.
func (d *Daemon) warnDescriptorLimit() {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return
	}
	if need := d.descriptorsAtCaps(); r.Cur < uint64(need) {
		d.log.Warn("the open-file limit is below what vpnfwd may hold with its listeners and the bridge at their caps: a program that fills one could leave the others without descriptors",
			"limit", r.Cur, "at_caps", need, "hint", "raise it (docker run --ulimit nofile=65536, systemd LimitNOFILE=65536, ulimit -n 65536)")
	}
}
