package config

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vpnfwd/vpnfwd/secret"
	"github.com/vpnfwd/vpnfwd/tunnel"
)

// LineError is a configuration error at a known place.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// ignoredKeys are wg-quick keys that would run commands or change the host's
// routing. vpnfwd never acts on them.
var ignoredKeys = map[string]string{
	"preup": "command", "postup": "command", "predown": "command", "postdown": "command",
	"table": "routing", "saveconfig": "host setting", "fwmark": "routing",
}

// LoadWGQuick reads a wg-quick file from disk.
func LoadWGQuick(path string) (tunnel.WireGuard, []string, error) {
	b, err := secret.ReadFile(path)
	if err != nil {
		return tunnel.WireGuard{}, nil, fmt.Errorf("reading WireGuard config: %w", err)
	}
	return ParseWGQuick(path, bytes.NewReader(b))
}

// ParseWGQuick reads a wg-quick configuration as providers hand it out.
// name is used in errors and warnings ("client.conf:7: ..."). Commands
// (PostUp etc.) are never run: they come back as warnings.
func ParseWGQuick(name string, r io.Reader) (tunnel.WireGuard, []string, error) {
	var (
		wg       tunnel.WireGuard
		warnings []string
		section  string
		peer     *tunnel.Peer
		hasIface bool
		sc       = bufio.NewScanner(r)
		line     int
	)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	fail := func(format string, a ...any) error {
		return &LineError{File: name, Line: line, Err: fmt.Errorf(format, a...)}
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			// Windows editors (Notepad) start UTF-8 files with a BOM.
			text = strings.TrimPrefix(text, "\uFEFF")
		}
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" || strings.HasPrefix(text, ";") {
			continue
		}
		if strings.HasPrefix(text, "[") {
			if !strings.HasSuffix(text, "]") {
				return wg, warnings, fail("malformed section header %q", text)
			}
			section = strings.ToLower(strings.TrimSpace(text[1 : len(text)-1]))
			switch section {
			case "interface":
				if hasIface {
					return wg, warnings, fail("a second [Interface] section")
				}
				hasIface = true
			case "peer":
				wg.Peers = append(wg.Peers, tunnel.Peer{})
				peer = &wg.Peers[len(wg.Peers)-1]
			default:
				return wg, warnings, fail("unknown section %q (want [Interface] or [Peer])", text)
			}
			continue
		}
		key, val, ok := strings.Cut(text, "=")
		if !ok {
			if !utf8.ValidString(text) || strings.ContainsFunc(text, func(r rune) bool { return r < ' ' && r != '\t' }) {
				return wg, warnings, fail("not text: is this a wg-quick file (the .conf your provider gives)?")
			}
			return wg, warnings, fail("want Key = Value, got %.60q", text)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		lk := strings.ToLower(key)
		if kind, ok := ignoredKeys[lk]; ok {
			warnings = append(warnings, fmt.Sprintf("%s:%d: %s is a wg-quick %s; vpnfwd never runs or applies it (ignored)", name, line, key, kind))
			continue
		}
		var err error
		switch section {
		case "interface":
			err = setInterface(&wg, lk, val)
		case "peer":
			err = setPeer(peer, lk, val)
		default:
			return wg, warnings, fail("%s outside a section", key)
		}
		if err == errUnknownKey {
			warnings = append(warnings, fmt.Sprintf("%s:%d: unknown key %s (ignored)", name, line, key))
			continue
		}
		if err != nil {
			return wg, warnings, fail("%s: %v", key, err)
		}
		if section == "peer" && lk == "publickey" {
			if i := slices.IndexFunc(wg.Peers[:len(wg.Peers)-1], func(o tunnel.Peer) bool { return o.PublicKey == peer.PublicKey }); i >= 0 {
				return wg, warnings, fail("%s: %s is also the key of [Peer] %d: WireGuard would merge the two into one peer; keep one [Peer] per server", key, peer.PublicKey, i+1)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return wg, warnings, &LineError{File: name, Line: line, Err: err}
	}
	if err := wg.Validate(); err != nil {
		return wg, warnings, &LineError{File: name, Err: err}
	}
	return wg, warnings, nil
}

var errUnknownKey = fmt.Errorf("unknown key")

func splitList(val string) []string {
	var out []string
	for _, f := range strings.Split(val, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func setInterface(wg *tunnel.WireGuard, key, val string) error {
	var err error
	switch key {
	case "privatekey":
		wg.PrivateKey, err = tunnel.ParsePrivateKey(val)
	case "address":
		for _, f := range splitList(val) {
			p, err := tunnel.ParsePrefix(f)
			if err != nil {
				return err
			}
			if err := checkAddress(p); err != nil {
				return err
			}
			wg.Address = append(wg.Address, p)
		}
	case "dns":
		for _, f := range splitList(val) {
			a, err := netip.ParseAddr(f)
			if err != nil {
				// wg-quick allows search domains in DNS; we only use
				// servers. Anything else is a mistake, not a domain.
				if !isDomain(f) {
					return fmt.Errorf("%q is neither a DNS server's address nor a search domain: write the servers' addresses, comma-separated (e.g. DNS = 10.2.0.1)", f)
				}
				continue
			}
			if err := checkDNS(a); err != nil {
				return err
			}
			wg.DNS = append(wg.DNS, tunnel.Addr(a))
		}
	case "mtu":
		wg.MTU, err = parseInt(val, 576, 65535)
	case "listenport":
		wg.ListenPort, err = parseInt(val, 0, 65535)
	default:
		return errUnknownKey
	}
	return err
}

func setPeer(p *tunnel.Peer, key, val string) error {
	var err error
	switch key {
	case "publickey":
		p.PublicKey, err = tunnel.ParseKey(val)
	case "presharedkey":
		p.PresharedKey, err = tunnel.ParsePrivateKey(val)
	case "endpoint":
		if p.Endpoint, err = tunnel.ParseEndpoint(val); err == nil {
			err = checkEndpoint(p.Endpoint)
		}
	case "allowedips":
		for _, f := range splitList(val) {
			pr, err := tunnel.ParsePrefix(f)
			if err != nil {
				return err
			}
			p.AllowedIPs = append(p.AllowedIPs, pr)
		}
	case "persistentkeepalive":
		if strings.EqualFold(val, "off") {
			return nil
		}
		p.PersistentKeepalive, err = parseInt(val, 0, 65535)
	default:
		return errUnknownKey
	}
	return err
}

func parseInt(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q: want a number from %d to %d", s, lo, hi)
	}
	return n, nil
}
