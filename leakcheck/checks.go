package leakcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/proxy"
	"golang.org/x/sys/unix"

	"github.com/vpnfwd/vpnfwd/dns"
	"github.com/vpnfwd/vpnfwd/portcheck"
	"github.com/vpnfwd/vpnfwd/status"
)

// Result of one leak check.
type Result struct {
	Check  string  `json:"check"`
	Result string  `json:"result"` // pass | leak | fail | error | skip
	Detail string  `json:"detail"`
	Secs   float64 `json:"seconds"`
}

func result(kind, c, f string, a ...any) Result {
	return Result{Check: c, Result: kind, Detail: fmt.Sprintf(f, a...)}
}

func pass(c, f string, a ...any) Result   { return result("pass", c, f, a...) }
func leak(c, f string, a ...any) Result   { return result("leak", c, f, a...) }
func errRes(c, f string, a ...any) Result { return result("error", c, f, a...) }
func skip(c, f string, a ...any) Result   { return result("skip", c, f, a...) }

// blocked reports whether a direct attempt was stopped on this host (the
// kill switch drops it: EPERM), rather than answered or refused by a peer.
func blocked(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) || isTimeoutErr(err)
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// tunnelClient fetches through vpnfwd's SOCKS5 proxy (names resolved in
// the tunnel).
func tunnelClient(socks string) (*http.Client, error) {
	d, err := proxy.SOCKS5("tcp", socks, nil, &net.Dialer{Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: d.(proxy.ContextDialer).DialContext}}, nil
}

// tunClient fetches over sockets bound to the kernel TUN dev
// (SO_BINDTODEVICE): through the tunnel whatever the routing says.
func tunClient(dev string) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), dev) }); err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext}}
}

// throughTunnel is an HTTP client whose requests go through vpnfwd's
// tunnel: over the TUN in tun mode, else through the SOCKS5 proxy.
func throughTunnel(st status.Status) (*http.Client, error) {
	if st.Tunnel.Mode == "tun" {
		return tunClient(st.Tunnel.Device), nil
	}
	if st.Proxy.SOCKS5 == "" {
		return nil, errors.New("vpnfwd's SOCKS5 proxy is off: nothing to reach the tunnel through")
	}
	return tunnelClient(st.Proxy.SOCKS5)
}

// directClient goes around the tunnel, the way an app that ignores the
// proxy would.
func directClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
}

func fetch(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d from %s", resp.StatusCode, url)
	}
	return strings.TrimSpace(string(b)), err
}

// checkExitIP compares the address the internet sees through the tunnel
// with a direct attempt. In tun mode the direct attempt is an app's plain
// request, which the routing must send through the TUN: it must exit with
// the tunnel's address.
func checkExitIP(ctx context.Context, st status.Status, ipURL string) (Result, string) {
	const name = "exit-ip"
	tc, err := throughTunnel(st)
	if err != nil {
		return errRes(name, "%v", err), ""
	}
	through, err := fetch(ctx, tc, ipURL)
	if err != nil {
		return errRes(name, "through the tunnel, %s: %v", ipURL, err), ""
	}
	direct, err := fetch(ctx, directClient(), ipURL)
	if st.Tunnel.Mode == "tun" {
		switch {
		case err != nil:
			return errRes(name, "the tunnel exits as %s, but a plain request (as an app makes) failed: %v", through, err), through
		case direct != through:
			return leak(name, "the tunnel exits as %s, but a plain request got out as %s: the routing does not send apps through %s", through, direct, st.Tunnel.Device), through
		}
		return pass(name, "apps exit as %s, through the TUN %s", through, st.Tunnel.Device), through
	}
	switch {
	case err != nil && blocked(err):
		return pass(name, "tunnel exits as %s; the direct attempt was blocked (%v)", through, shortErr(err)), through
	case err != nil:
		return errRes(name, "tunnel exits as %s; the direct attempt failed in a way that proves nothing: %v", through, err), through
	case direct == through:
		return leak(name, "direct traffic and the tunnel both exit as %s: the VPN is not hiding this host", through), through
	}
	return leak(name, "tunnel exits as %s, but a direct request got out as %s: apps that ignore the proxy leak (turn on --killswitch)", through, direct), through
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// SystemDNS lists the host's resolvers from /etc/resolv.conf.
func SystemDNS() []string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range dns.Nameservers(b) {
		out = append(out, netip.AddrPortFrom(a, 53).String())
	}
	return out
}

// checkDNS sends a query straight to each resolver outside the tunnel: any
// answer, even a refusal, means DNS leaves the host. In tun mode queries
// are meant to go to vpnfwd's forwarder or be routed through the TUN: the
// kernel's route to each resolver tells.
func checkDNS(ctx context.Context, st status.Status, servers []string) Result {
	const name = "dns"
	if len(servers) == 0 {
		return skip(name, "no resolver in /etc/resolv.conf and no --dns-server")
	}
	if st.Tunnel.Mode == "tun" {
		return checkDNSRoutes(st, servers)
	}
	q := dnsQuery("example.com.")
	var ok []string
	for _, s := range servers {
		c, err := net.DialTimeout("udp", s, 2*time.Second)
		if err != nil {
			return errRes(name, "%s: %v", s, err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Write(q)
		if err == nil {
			_, err = c.Read(make([]byte, 512))
		}
		c.Close()
		switch {
		case err == nil:
			return leak(name, "the resolver %s answered a query sent outside the tunnel", s)
		case errors.Is(err, syscall.ECONNREFUSED):
			return leak(name, "a query to %s left the host (it was refused there)", s)
		case blocked(err):
			ok = append(ok, fmt.Sprintf("%s (%s)", s, shortErr(err)))
		default:
			return errRes(name, "%s: %v", s, err)
		}
	}
	return pass(name, "no answer outside the tunnel from %s; the tunnel resolves names", strings.Join(ok, ", "))
}

// checkDNSRoutes is checkDNS in tun mode: each resolver must be vpnfwd's
// forwarder or be routed into the TUN.
func checkDNSRoutes(st status.Status, servers []string) Result {
	const name = "dns"
	var ok []string
	for _, s := range servers {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return errRes(name, "%s: %v", s, err)
		}
		if st.DNS != "" && ap.String() == st.DNS {
			ok = append(ok, s+" (vpnfwd's forwarder)")
			continue
		}
		dev, err := routeDevice(ap.Addr())
		switch {
		case err != nil:
			return errRes(name, "route to %s: %v", s, err)
		case dev == "lo":
			return leak(name, "queries go to %s, a resolver on this host that is not vpnfwd's forwarder: it asks outside the tunnel (--dns-resolv-conf points resolv.conf at the forwarder)", s)
		case dev != st.Tunnel.Device:
			return leak(name, "queries to %s leave through %s, outside the tunnel", s, dev)
		}
		ok = append(ok, s+" (routed through "+dev+")")
	}
	return pass(name, "names are resolved through the tunnel: %s", strings.Join(ok, ", "))
}

func dnsQuery(name string) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x7670, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	out, _ := b.Finish()
	return out
}

// checkIPv6 tries a direct IPv6 connection. In tun mode one routed
// through the TUN is the tunnel's, not a leak.
func checkIPv6(ctx context.Context, st status.Status, target string) Result {
	const name = "ipv6"
	if st.Tunnel.Mode == "tun" {
		if ap, err := netip.ParseAddrPort(target); err == nil {
			if dev, err := routeDevice(ap.Addr()); err == nil && dev == st.Tunnel.Device {
				return pass(name, "IPv6 to %s is routed through %s", target, dev)
			}
		}
	}
	c, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp6", target)
	if err == nil {
		c.Close()
		return leak(name, "a direct IPv6 connection to %s got through", target)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return leak(name, "a direct IPv6 connection to %s left the host (refused there)", target)
	}
	if blocked(err) || errors.Is(err, syscall.EADDRNOTAVAIL) || strings.Contains(err.Error(), "no suitable address") {
		return pass(name, "no IPv6 path outside the tunnel (%s)", shortErr(err))
	}
	return errRes(name, "%s: %v", target, err)
}

// checkPort asks an outside checker, through the tunnel, whether the
// forwarded port is open.
func checkPort(ctx context.Context, st status.Status, tmpl string, port int) Result {
	const name = "port"
	if tmpl == "" {
		return skip(name, "turned off (--port-check-url \"\")")
	}
	if port == 0 {
		return errRes(name, "vpnfwd holds no forwarded port")
	}
	tc, err := throughTunnel(st)
	if err != nil {
		return errRes(name, "%v", err)
	}
	ip, _ := netip.ParseAddr(st.Port.PublicIP)
	url := portcheck.Expand(tmpl, ip, uint16(port))
	open, err := portcheck.Check(ctx, tc, tmpl, ip, uint16(port))
	if err == nil && !open {
		// One "closed" is not proof (a gateway renewing its rule, a
		// checker's lost SYN): as --port-check, it takes two in a row.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			open, err = portcheck.Check(ctx, tc, tmpl, ip, uint16(port))
		}
	}
	switch {
	case err != nil:
		return errRes(name, "%v", err)
	case open:
		return pass(name, "port %d is reachable from outside (%s)", port, url)
	}
	return Result{Check: name, Result: "fail", Detail: fmt.Sprintf("port %d is NOT reachable from outside (%s, twice a second apart): the provider stopped forwarding, or the service is down", port, url)}
}

// routeDevice is the interface the kernel routes an ordinary packet to
// dst through (RTM_GETROUTE, policy rules included).
func routeDevice(dst netip.Addr) (string, error) {
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil {
		return "", err
	}
	if len(routes) == 0 {
		return "", errors.New("no route")
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}
