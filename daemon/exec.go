package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/secret"
)

// Exec waits for a port, starts CMD with it in its environment in exec's
// namespace, passes a stop signal on, and returns CMD's exit status. The
// daemon must have been made with Options.Exec.
func (d *Daemon) Exec(ctx context.Context, ports <-chan provider.Lease, wait time.Duration, argv []string, uid, gid *uint32) (int, error) {
	p, ok := d.plane.(*execPlane)
	if !ok {
		return 0, errors.New("exec: the daemon was not made with Options.Exec")
	}
	sb := p.Sandbox
	var lease provider.Lease
	select {
	case lease = <-ports:
	case <-time.After(wait):
		return 0, fmt.Errorf("no forwarded port within %s (see the log above; --port-wait sets how long to wait): CMD not started", wait)
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-sb.Gone():
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
	pid, err := sb.Run(ctx, argv, env, dir, uid, gid)
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	d.log.Info("command started in the tunnel's namespace", "cmd", argv[0], "pid", pid, "port", strings.Join(list, ","))
	select {
	case st := <-sb.Exited():
		d.log.Info("command ended", "status", st)
		return st, nil
	case <-sb.Gone():
		return 0, errors.New("the namespace's agent ended")
	case <-ctx.Done():
	}
	sb.Signal(syscall.SIGTERM)
	select {
	case st := <-sb.Exited():
		d.log.Info("command ended", "status", st)
		return st, nil
	case <-time.After(10 * time.Second):
		d.log.Warn("command still running 10 s after SIGTERM: killing it")
		sb.Signal(syscall.SIGKILL)
		select {
		case st := <-sb.Exited():
			return st, nil
		case <-time.After(2 * time.Second):
			return 137, nil
		}
	}
}

// cmdEnv is CMD's environment: vpnfwd's own, without vpnfwd's settings
// (they may hold secrets) and the agent's marker.
func cmdEnv(env []string) []string { return secret.CleanEnv(env) }
