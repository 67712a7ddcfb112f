package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpnfwd/vpnfwd/netns"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/secret"
)

// execTun is the TUN's name inside exec's namespace (the hooks'
// {{VPN_INTERFACE}} there).
const execTun = "tun0"

// execDNS is where CMD's resolv.conf points: the forwarder's sockets,
// made inside CMD's namespace.
var execDNS = netip.MustParseAddrPort("127.0.0.1:53")

// execCmd waits for a port, starts CMD with it in its environment, passes
// a stop signal on, and returns CMD's exit status.
func (d *Daemon) Exec(ctx context.Context, ports <-chan provider.Lease, wait time.Duration, argv []string, uid, gid *uint32) (int, error) {
	var lease provider.Lease
	select {
	case lease = <-ports:
	case <-time.After(wait):
		return 0, fmt.Errorf("no forwarded port within %s (see the log above; --port-wait sets how long to wait): CMD not started", wait)
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-d.sandbox.Gone():
		return 0, errors.New("the namespace's agent ended before CMD started")
	}
	pub := lease.PublicPorts()
	var list []string
	for _, p := range pub {
		list = append(list, strconv.Itoa(int(p)))
	}
	env := cmdEnv(os.Environ())
	if len(pub) > 0 {
		env = append(env, "VPNFWD_PORT="+list[0], "VPNFWD_PORTS="+strings.Join(list, ","))
	}
	dir, _ := os.Getwd()
	pid, err := d.sandbox.Run(ctx, argv, env, dir, uid, gid)
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	d.log.Info("command started in the tunnel's namespace", "cmd", argv[0], "pid", pid, "port", strings.Join(list, ","))
	select {
	case st := <-d.sandbox.Exited():
		d.log.Info("command ended", "status", st)
		return st, nil
	case <-d.sandbox.Gone():
		return 0, errors.New("the namespace's agent ended")
	case <-ctx.Done():
	}
	d.sandbox.Signal(syscall.SIGTERM)
	select {
	case st := <-d.sandbox.Exited():
		d.log.Info("command ended", "status", st)
		return st, nil
	case <-time.After(10 * time.Second):
		d.log.Warn("command still running 10 s after SIGTERM: killing it")
		d.sandbox.Signal(syscall.SIGKILL)
		select {
		case st := <-d.sandbox.Exited():
			return st, nil
		case <-time.After(2 * time.Second):
			return 137, nil
		}
	}
}

// cmdEnv is CMD's environment: vpnfwd's own, without vpnfwd's settings
// (they may hold secrets) and the agent's marker.
func cmdEnv(env []string) []string { return secret.CleanEnv(env) }

// openSandbox is exec's data plane: the TUN inside CMD's namespace, made
// by the agent, with the DNS forwarder's sockets beside it.
func (d *Daemon) openSandbox() error {
	w := d.cfg.WireGuard
	s, err := netns.Start(netns.Config{Tun: execTun, MTU: w.MTU, Addresses: w.Addresses(), Routes: allowedIPs(w.Peers), DNS: execDNS, Gateway: d.appGateway()})
	if err != nil {
		return err
	}
	d.sandbox, d.plane = s, s
	d.dnsUDP, d.dnsTCP = s.DNSUDP, s.DNSTCP
	d.log.Info("exec: a network namespace with only lo and the tunnel is ready")
	return nil
}
