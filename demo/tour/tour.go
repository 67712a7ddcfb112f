// Package tour is `vpnfwd demo`: the real daemon against the in-process
// VPN provider of package demo, each step shown from the outside (an
// internet peer through the forwarded port, an app through the proxy, the
// control API, the gateway restarting and vpnfwd mapping the port again).
package tour

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/daemon"
	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/natpmp"
	"github.com/vpnfwd/vpnfwd/provider/protonvpn"
	"github.com/vpnfwd/vpnfwd/session"
)

// Run runs the tour, writing each step to out; log gets vpnfwd's own log
// (discard it for the steps alone). version is what status reports.
func Run(ctx context.Context, out io.Writer, log *slog.Logger, version string) error {
	start := time.Now()
	say := func(format string, a ...any) {
		fmt.Fprintf(out, "[%5.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}

	srv, err := demo.Start(demo.Options{NATPMP: "proton", Log: log.With("component", "simulated-provider")})
	if err != nil {
		return fmt.Errorf("starting the simulated provider: %w", err)
	}
	defer srv.Close()
	say("simulated VPN provider up: WireGuard server %s, NAT-PMP gateway %s:5351, public IP %s (its ports are reachable here on %s)",
		srv.Endpoint, demo.GatewayAddr, demo.PublicIP, demo.PublicBind)

	svc, err := demo.StartService()
	if err != nil {
		return err
	}
	defer svc.Close()
	say("local service (the thing you want reachable) listening on %s, TCP and UDP", svc.Addr)

	client, err := srv.NewClient()
	if err != nil {
		return err
	}
	wgq := demo.WGQuick(client)
	parsed, _, err := config.ParseWGQuick("demo.conf", strings.NewReader(wgq))
	if err != nil {
		return err
	}
	cfg := config.Defaults()
	cfg.WireGuard = parsed
	cfg.Provider.Name = "protonvpn"
	cfg.Providers = provider.MustList(protonvpn.Info)
	cfg.Forward.Target = svc.Addr
	cfg.Proxy = config.Proxy{SOCKS5: "127.0.0.1:0", HTTP: "127.0.0.1:0"}
	cfg.API.Listen = "127.0.0.1:0"
	say("vpnfwd up --wg-config demo.conf --provider protonvpn --forward %s", svc.Addr)

	dctx, stop := context.WithCancel(ctx)
	defer stop()
	sink, leases := daemon.PortSink()
	steps := make(chan string, 16)
	recoveries := func(ev session.Event) {
		if ev.Kind == session.KindRecovery {
			select {
			case steps <- ev.Detail:
			default:
			}
		}
	}
	d, err := daemon.New(dctx, &cfg, daemon.Options{Version: version, Log: log.With("component", "vpnfwd"), Session: session.Options{Sinks: []session.Sink{sink, recoveries}}})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()

	var lease provider.Lease
	select {
	case lease = <-leases:
	case err := <-done:
		return fmt.Errorf("vpnfwd stopped: %v", err)
	case <-time.After(15 * time.Second):
		return errors.New("no port after 15 s")
	case <-ctx.Done():
		return ctx.Err()
	}
	port := lease.Ports[0].Public
	life := time.Until(lease.Expires).Round(time.Second)
	renew := life / 2 // natpmp's cadence, unless the provider's convention says otherwise
	if e := protonvpn.Conventions.RenewEvery; e > 0 && e < life {
		renew = e
	}
	say("tunnel up, NAT-PMP gave port %d on %s (lease %s, renewed every %s, as Proton's client)", port, lease.PublicIP, life, renew)
	if err := fromOutside(say, d, port); err != nil {
		return err
	}
	if err := gatewayRestart(ctx, say, srv, steps, port); err != nil {
		return err
	}
	if err := gatewayForgets(ctx, say, srv, port); err != nil {
		return err
	}
	stop()
	if err := <-done; err != nil {
		return err
	}
	left := "none: released on exit"
	if p := srv.Gateway.Mapped(demo.ClientAddr); p != 0 {
		left = fmt.Sprintf("port %d still mapped", p)
	}
	say("vpnfwd stopped cleanly; gateway mappings left for this client: %s", left)
	fmt.Fprintln(out, "demo OK: real WireGuard, NAT-PMP, bridge, proxy, API and recovery code paths, no VPN account, no root.")
	return nil
}

// fromOutside uses the running vpnfwd as the world would: an internet
// peer through the forwarded port, an app through the proxy, the API.
func fromOutside(say func(string, ...any), d *daemon.Daemon, port uint16) error {
	public := net.JoinHostPort(demo.PublicBind.String(), strconv.Itoa(int(port)))
	reply, err := demo.TCP(public, "hello over TCP")
	if err != nil {
		return fmt.Errorf("internet peer over TCP: %w", err)
	}
	say("internet peer -> %s:%d/tcp -> tunnel -> local service: %q", demo.PublicIP, port, reply)
	reply, err = demo.UDP(public, "hello over UDP")
	if err != nil {
		return fmt.Errorf("internet peer over UDP: %w", err)
	}
	say("internet peer -> %s:%d/udp -> tunnel -> local service: %q", demo.PublicIP, port, reply)

	ip, err := demo.SOCKS(d.SOCKS5Addr(), "http://"+demo.WhatsMyIPName+"/")
	if err != nil {
		return fmt.Errorf("SOCKS5 proxy: %w", err)
	}
	say("app -> SOCKS5 %s -> http://%s/ says %s: the VPN's address, name resolved inside the tunnel", d.SOCKS5Addr(), demo.WhatsMyIPName, ip)

	apiURL := "http://" + d.APIAddr()
	body, err := httpGet(http.DefaultClient, apiURL+"/v1/port")
	if err != nil {
		return fmt.Errorf("control API: %w", err)
	}
	say("GET %s/v1/port -> %s", apiURL, strings.TrimSpace(strings.Join(strings.Fields(body), "")))
	return nil
}

func httpGet(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// gatewayRestart restarts the provider's NAT-PMP gateway, which loses
// every mapping, and shows vpnfwd noticing by the gateway's epoch and
// mapping the same port again.
func gatewayRestart(ctx context.Context, say func(string, ...any), srv *demo.Server, steps <-chan string, port uint16) error {
	g := srv.Gateway
	// A real gateway has been up a while: its epoch says so, and vpnfwd's
	// next check (every 1.5 s) reads it.
	g.Age(time.Hour)
	seen := g.Requests(natpmp.OpMapTCP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if g.Requests(natpmp.OpMapTCP) > seen {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("vpnfwd made no liveness check in 10 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	start := time.Now()
	g.Restart()
	say("the VPN gateway restarts and forgets every port mapping")
	for {
		select {
		case step := <-steps:
			if !strings.Contains(step, "re-mapped") {
				continue
			}
			say("vpnfwd saw the gateway's epoch go back: %s, %s after the restart", step, time.Since(start).Round(10*time.Millisecond))
			reply, err := demo.TCP(net.JoinHostPort(demo.PublicBind.String(), strconv.Itoa(int(port))), "still there?")
			if err != nil {
				return fmt.Errorf("internet peer after the gateway restart: %w", err)
			}
			say("internet peer -> %s:%d/tcp -> local service: %q", demo.PublicIP, port, reply)
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the port was not mapped again within 10 s of the gateway restart")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// gatewayForgets has the gateway drop the mapping without its epoch going
// back (as miniupnpd restarted with system_uptime=yes does): nothing
// announces it, and vpnfwd's next check, which asks for the mapping again,
// makes the gateway map it again.
func gatewayForgets(ctx context.Context, say func(string, ...any), srv *demo.Server, port uint16) error {
	g := srv.Gateway
	start := time.Now()
	g.Forget(false)
	say("the gateway forgets the mapping without its epoch going back (nothing announces it)")
	for g.Mapped(demo.ClientAddr) != port {
		if time.Since(start) > 10*time.Second {
			return errors.New("the mapping was not made again within 10 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	say("vpnfwd's next check asked for the mapping again and the gateway made it again, %s later", time.Since(start).Round(10*time.Millisecond))
	reply, err := demo.TCP(net.JoinHostPort(demo.PublicBind.String(), strconv.Itoa(int(port))), "and now?")
	if err != nil {
		return fmt.Errorf("internet peer after the gateway forgot the mapping: %w", err)
	}
	say("internet peer -> %s:%d/tcp -> local service: %q", demo.PublicIP, port, reply)
	return nil
}
