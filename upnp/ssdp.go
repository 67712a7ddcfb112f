package upnp

import (
	"bufio"
	"bytes"
	"fmt"
	"net/textproto"
	"strings"
)

// ParseMSearch reads an SSDP M-SEARCH request ("M-SEARCH * HTTP/1.1",
// MAN "ssdp:discover", ST) and returns its search target; ok is false
// for anything else (NOTIFY, answers, garbage). At most 2 KiB and 32
// header lines are read.
func ParseMSearch(b []byte) (st string, ok bool) {
	if len(b) > 2048 {
		return "", false
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	line, err := r.ReadLine()
	if err != nil || !strings.EqualFold(strings.Join(strings.Fields(line), " "), "M-SEARCH * HTTP/1.1") {
		return "", false
	}
	man := ""
	for range 32 {
		l, err := r.ReadLine()
		if err != nil || l == "" {
			break
		}
		k, v, found := strings.Cut(l, ":")
		if !found {
			return "", false
		}
		switch strings.ToUpper(strings.TrimSpace(k)) {
		case "ST":
			st = strings.TrimSpace(v)
		case "MAN":
			man = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	if man != "ssdp:discover" || st == "" || len(st) > 256 {
		return "", false
	}
	return st, true
}

// Device and service types.
const (
	igdType  = "urn:schemas-upnp-org:device:InternetGatewayDevice:"
	wanType  = "urn:schemas-upnp-org:device:WANDevice:"
	connType = "urn:schemas-upnp-org:device:WANConnectionDevice:"
	ipcType  = "urn:schemas-upnp-org:service:WANIPConnection:"
	cifType  = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
)

// target is one thing SSDP may be asked for, as an answer names it.
type target struct{ st, usn string }

// targets are IGD version v's (1 or 2) search targets.
func (s *Server) targets(v int) []target {
	root, wan, conn := s.udn(3*(v-1)), s.udn(3*(v-1)+1), s.udn(3*(v-1)+2)
	ver := fmt.Sprint(v)
	return []target{
		{"upnp:rootdevice", root + "::upnp:rootdevice"},
		{root, root},
		{igdType + ver, root + "::" + igdType + ver},
		{wan, wan},
		{wanType + ver, wan + "::" + wanType + ver},
		{cifType, wan + "::" + cifType},
		{conn, conn},
		{connType + ver, conn + "::" + connType + ver},
		{ipcType + ver, conn + "::" + ipcType + ver},
	}
}

// answers are the SSDP answers to a search for st: for ssdp:all every
// target of both devices, else the targets equal to st (each IGD
// version is a device of its own, so a search for version 1 finds the
// IGD:1 device and one for version 2 the IGD:2 device).
func (s *Server) answers(st, location string) [][]byte {
	var out [][]byte
	for v := 1; v <= 2; v++ {
		for _, t := range s.targets(v) {
			if st != "ssdp:all" && st != t.st {
				continue
			}
			out = append(out, s.answer(t, fmt.Sprintf("http://%s/rootDesc%s.xml", location, map[int]string{1: "", 2: "2"}[v])))
		}
	}
	return out
}

// matching counts the answers a search for st gets.
func (s *Server) matching(st string) int {
	n := 0
	for v := 1; v <= 2; v++ {
		for _, t := range s.targets(v) {
			if st == "ssdp:all" || st == t.st {
				n++
			}
		}
	}
	return n
}

// answer is one SSDP answer, shaped as miniupnpd's.
func (s *Server) answer(t target, location string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 200 OK\r\n"+
		"CACHE-CONTROL: max-age=120\r\n"+
		"ST: %s\r\n"+
		"USN: %s\r\n"+
		"EXT:\r\n"+
		"SERVER: Linux UPnP/1.1 vpnfwd/1\r\n"+
		"LOCATION: %s\r\n"+
		"OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n"+
		"01-NLS: 1\r\n"+
		"BOOTID.UPNP.ORG: 1\r\n"+
		"CONFIGID.UPNP.ORG: 1337\r\n"+
		"\r\n", t.st, t.usn, location)
}
