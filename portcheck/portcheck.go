// Package portcheck asks an outside port checker whether a forwarded port
// is reachable from the internet: an HTTP GET of a URL template with the
// port ({port}) and, where the checker needs it, the public address
// ({ip}), sent through the tunnel so the checker sees the VPN's address.
// Both the daemon's slow outside check (--port-check) and leak-check use
// it. An answer the checker did not give is never taken for "closed".
package portcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Transmission is Transmission's public checker: it tests the asking
// address's port and answers 1 or 0.
const Transmission = "https://portcheck.transmissionbt.com/{port}"

// maxBody bounds what is read of an answer.
const maxBody = 4096

// ErrNoAnswer wraps every failure to get a usable answer: the port's
// state is unknown.
var ErrNoAnswer = errors.New("no usable answer from the port checker")

// ParseTemplate checks a checker URL template: http or https, with
// {port} in it.
func ParseTemplate(tmpl string) error {
	if !strings.Contains(tmpl, "{port}") {
		return fmt.Errorf("%q has no {port} (for example %s)", tmpl, Transmission)
	}
	u, err := url.Parse(strings.NewReplacer("{port}", "1", "{ip}", "192.0.2.1").Replace(tmpl))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL (for example %s)", tmpl, Transmission)
	}
	return nil
}

// Expand fills a template in.
func Expand(tmpl string, ip netip.Addr, port uint16) string {
	ipStr := ""
	if ip.IsValid() {
		ipStr = ip.String()
	}
	return strings.NewReplacer("{port}", strconv.Itoa(int(port)), "{ip}", url.PathEscape(ipStr)).Replace(tmpl)
}

// Host is the checker's host name, for logs and status.
func Host(tmpl string) string {
	u, err := url.Parse(Expand(tmpl, netip.Addr{}, 1))
	if err != nil {
		return tmpl
	}
	return u.Hostname()
}

// Check asks the checker at tmpl, with c (a client whose connections go
// through the tunnel), whether port is open. Any failure to get a clear
// answer is an error wrapping ErrNoAnswer: unknown, not closed.
func Check(ctx context.Context, c *http.Client, tmpl string, ip netip.Addr, port uint16) (open bool, err error) {
	u := Expand(tmpl, ip, port)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrNoAnswer, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrNoAnswer, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return false, fmt.Errorf("%w: reading %s: %v", ErrNoAnswer, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%w: HTTP %d from %s", ErrNoAnswer, resp.StatusCode, u)
	}
	return Answer(string(b))
}

// Answer reads a checker's answer: a bare 1/0, true/false, open/closed,
// yes/no, or a JSON object with one of those under "open", "reachable",
// "status" or "result".
func Answer(body string) (open bool, err error) {
	word := strings.ToLower(strings.TrimSpace(body))
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) == nil {
		for _, k := range []string{"open", "reachable", "status", "result"} {
			if v, ok := m[k]; ok {
				word = strings.ToLower(fmt.Sprint(v))
				break
			}
		}
	}
	switch word {
	case "1", "true", "open", "yes":
		return true, nil
	case "0", "false", "closed", "no":
		return false, nil
	}
	if len(word) > 64 {
		word = word[:64] + "…"
	}
	return false, fmt.Errorf("%w: %q (want 1/0, true/false, open/closed)", ErrNoAnswer, word)
}
