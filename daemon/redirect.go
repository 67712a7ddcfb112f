package daemon

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/vpnfwd/vpnfwd/forward"
	"github.com/vpnfwd/vpnfwd/nft"
	"github.com/vpnfwd/vpnfwd/portmap"
	"github.com/vpnfwd/vpnfwd/provider"
)

// redirects take the forwarded ports to the service in the kernel (tun
// mode, exec): with --forward HOST:PORT the forwarded port goes to PORT;
// without one the service listens on the public port (the one published
// to it), and where the gateway delivers to another local port, that is
// redirected; a port an app mapped (NAT-PMP, PCP, UPnP) goes to the
// app's own port. The session's apply stage (a new lease) and the
// responder (the apps' mappings changed) both move them.
type redirects struct {
	target target
	log    *slog.Logger
	// put replaces the redirects in the namespace (none: removes them).
	put func([]nft.PortRedirect) error
	// remove: close takes them out (tun mode; exec's go with its
	// namespace).
	remove bool

	mu    sync.Mutex
	ports []provider.Port    // the forwarded ports the redirects serve (none before the first lease)
	apps  []portmap.Mapping  // the apps' mappings, as the responder last said
	in    []nft.PortRedirect // what is in now
	on    bool               // the table is in
	said  string             // what the log last said of them
	runs  int                // how many times applyLocked ran
}

// setPorts serves a new lease: the responder hears of it first, and
// the redirects are put in once, for the lease and the apps' mappings
// it leaves. A lost lease changes nothing: the redirects wait for the
// next port.
func (r *redirects) setPorts(l provider.Lease, offer func(provider.Lease)) {
	if !l.Held() {
		return
	}
	r.mu.Lock()
	r.ports = l.Ports
	runs := r.runs
	r.mu.Unlock()
	offer(l) // when the apps' mappings move, setApps applies them
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == runs {
		r.applyLocked()
	}
}

// setApps applies the apps' mappings the responder hands in.
func (r *redirects) setApps(ms []portmap.Mapping) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apps = ms
	r.applyLocked()
}

// applyLocked puts in the redirects for r.ports and r.apps.
func (r *redirects) applyLocked() {
	r.runs++
	if len(r.ports) == 0 {
		return
	}
	apps := map[uint16][]portmap.Mapping{}
	for _, m := range r.apps {
		apps[m.Local] = append(apps[m.Local], m)
	}
	var rs []nft.PortRedirect
	for _, p := range r.ports {
		if ms := apps[p.Local]; len(ms) > 0 {
			for _, m := range ms {
				if m.Internal != p.Local {
					rs = append(rs, nft.PortRedirect{Proto: m.Proto, From: p.Local, To: m.Internal})
				}
			}
			continue
		}
		to := r.target.to(p.Public)
		if to == p.Local {
			continue
		}
		for _, proto := range r.target.protocols {
			if p.Protocol == "" || p.Protocol == proto {
				rs = append(rs, nft.PortRedirect{Proto: proto, From: p.Local, To: to})
			}
		}
	}
	r.sayLocked(apps)
	if slices.Equal(rs, r.in) && (len(rs) > 0) == r.on {
		return
	}
	if len(rs) == 0 && !r.on {
		r.in = nil
		return
	}
	if err := r.put(rs); err != nil {
		r.log.Error("redirecting the forwarded port", "err", err)
		return
	}
	r.in = rs
	r.on = len(rs) > 0
}

// sayLocked logs what each port does when that changes (not at every
// renewal).
func (r *redirects) sayLocked(apps map[uint16][]portmap.Mapping) {
	var said []string
	for _, p := range r.ports {
		to := r.target.to(p.Public)
		switch ms := apps[p.Local]; {
		case len(ms) > 0:
			said = append(said, fmt.Sprintf("app %d %d %s", p.Local, ms[0].Internal, ms[0].Via))
		case to == p.Local:
			said = append(said, fmt.Sprintf("itself %d", p.Local))
		default:
			said = append(said, fmt.Sprintf("redirect %d %d", p.Local, to))
		}
	}
	key := strings.Join(said, ",")
	if key == r.said {
		return
	}
	r.said = key
	for _, p := range r.ports {
		to := r.target.to(p.Public)
		switch ms := apps[p.Local]; {
		case len(ms) > 0:
			r.log.Info("the forwarded port goes to the app that asked for it", "port", p.Local, "app_port", ms[0].Internal, "via", ms[0].Via)
		case to == p.Local:
			r.log.Info("the service is reached on the forwarded port itself (no bridge)", "port", p.Local, "protocols", r.target.protocols)
		default:
			r.log.Info("the forwarded port is redirected (the service must listen on all addresses or the tunnel's, not on loopback only)", "port", p.Local, "to", to)
		}
	}
}

// stats: the kernel forwards, vpnfwd counts nothing.
func (r *redirects) stats() forward.Stats { return forward.Stats{} }

// close removes the redirects, if any (tun mode).
func (r *redirects) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on || !r.remove {
		return
	}
	if err := r.put(nil); err != nil {
		r.log.Error("removing the port redirect", "err", err)
	}
	r.on = false
}
