package upnp

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/portmap"
)

// Handler serves the device descriptions and the SOAP control.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	xmlDoc := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
			w.Write(b)
		}
	}
	mux.Handle("GET /rootDesc.xml", xmlDoc(s.description(1)))
	mux.Handle("GET /rootDesc2.xml", xmlDoc(s.description(2)))
	mux.HandleFunc("POST "+ipcControl, s.control)
	mux.HandleFunc("POST "+cifControl, s.control)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.log.Debug("IGD request for nothing it serves", "client", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		http.NotFound(w, r)
	})
	return mux
}

// control answers one SOAP action.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.Header().Set("Ext", "")
	w.Header().Set("Server", "Linux UPnP/1.1 vpnfwd/1")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	c, err := ParseSOAP(body)
	if err != nil {
		s.log.Debug("a SOAP request that is not one action", "client", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		w.Write(fault(errInvalidArgs))
		return
	}
	if svc, action, ok := soapAction(r.Header.Get("SOAPAction")); ok && (svc != c.Service || action != c.Action) {
		s.log.Debug("a SOAP request whose SOAPAction is not its action", "client", r.RemoteAddr, "soapaction", r.Header.Get("SOAPAction"), "action", c.Action)
		w.WriteHeader(http.StatusInternalServerError)
		w.Write(fault(errInvalidAction))
		return
	}
	out, uerr := s.call(c, r.URL.Path, s.owner(r))
	if uerr != nil {
		s.log.Debug("IGD action refused", "client", r.RemoteAddr, "action", c.Action, "args", c.Args, "error", uerr.code, "description", uerr.desc)
		w.WriteHeader(http.StatusInternalServerError)
		w.Write(fault(*uerr))
		return
	}
	s.log.Debug("IGD action", "client", r.RemoteAddr, "action", c.Action, "args", c.Args)
	w.Write(out)
}

// owner is the requesting connection's address and user.
func (s *Server) owner(r *http.Request) portmap.IGDOwner {
	client, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return portmap.IGDOwner{}
	}
	o := portmap.IGDOwner{Addr: client.Addr().Unmap()}
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if ta, ok := la.(*net.TCPAddr); ok && s.cfg.Owner != nil {
		o.UID, o.UIDOK = s.cfg.Owner(client, ta.AddrPort())
	}
	return o
}

// call runs one action of the service at path for owner.
func (s *Server) call(c Call, path string, owner portmap.IGDOwner) ([]byte, *upnpError) {
	version := 0
	switch {
	case path == ipcControl && (c.Service == ipcType+"1" || c.Service == ipcType+"2"):
		version = int(c.Service[len(c.Service)-1] - '0')
	case path == cifControl && c.Service == cifType:
		if c.Action == "GetCommonLinkProperties" {
			return response(c, "NewWANAccessType", "Ethernet", "NewLayer1UpstreamMaxBitRate", "0",
				"NewLayer1DownstreamMaxBitRate", "0", "NewPhysicalLinkStatus", "Up"), nil
		}
		return nil, &errInvalidAction
	default:
		return nil, &errInvalidAction
	}
	switch c.Action {
	case "GetExternalIPAddress":
		ip := s.cfg.Gateway.PublicIP()
		if !ip.IsValid() {
			return nil, &errActionFailed
		}
		return response(c, "NewExternalIPAddress", ip.String()), nil
	case "GetStatusInfo":
		status := "Disconnected"
		if s.cfg.Gateway.Held() {
			status = "Connected"
		}
		up := int64(s.cfg.Now().Sub(s.start) / time.Second)
		return response(c, "NewConnectionStatus", status, "NewLastConnectionError", "ERROR_NONE", "NewUptime", strconv.FormatInt(up, 10)), nil
	case "GetConnectionTypeInfo":
		return response(c, "NewConnectionType", "IP_Routed", "NewPossibleConnectionTypes", "IP_Routed"), nil
	case "GetNATRSIPStatus":
		return response(c, "NewRSIPAvailable", "0", "NewNATEnabled", "1"), nil
	case "AddPortMapping":
		return s.add(c, owner, false)
	case "AddAnyPortMapping":
		if version < 2 {
			return nil, &errInvalidAction
		}
		return s.add(c, owner, true)
	case "DeletePortMapping":
		return s.delete(c, owner)
	case "GetSpecificPortMappingEntry":
		return s.specific(c)
	case "GetGenericPortMappingEntry":
		return s.generic(c)
	}
	return nil, &errInvalidAction
}

// add answers AddPortMapping and (any) AddAnyPortMapping.
func (s *Server) add(c Call, owner portmap.IGDOwner, anyPort bool) ([]byte, *upnpError) {
	if e := remoteHost(c); e != nil {
		return nil, e
	}
	proto, ok := protocol(c.Args["NewProtocol"])
	ext, extOK := port(c.Args["NewExternalPort"])
	in, inOK := port(c.Args["NewInternalPort"])
	lease, leaseErr := strconv.ParseUint(c.Args["NewLeaseDuration"], 10, 32)
	if c.Args["NewLeaseDuration"] == "" {
		leaseErr = nil
	}
	switch {
	case !ok || leaseErr != nil:
		return nil, &errInvalidArgs
	case !inOK && in == 0 && c.Service != ipcType+"1":
		return nil, &errWildcardIntPort
	case !inOK:
		return nil, &errInvalidArgs
	case !extOK && ext == 0 && !anyPort:
		return nil, &errWildcardExtPort
	case !extOK && !anyPort:
		return nil, &errInvalidArgs
	}
	// secure_mode: the internal client is this host (none given: the
	// requester, as miniupnpd takes it).
	if ic := c.Args["NewInternalClient"]; ic != "" {
		a, err := netip.ParseAddr(ic)
		if err != nil {
			return nil, &errInvalidArgs
		}
		if !s.cfg.Local(a.Unmap()) {
			s.log.Info("an app asked the IGD to map a port to another host: refused", "client", owner.Addr.String(), "internal_client", ic)
			if c.Service == ipcType+"1" {
				return nil, &errConflict // IGD:1 has no 606 here (miniupnpd)
			}
			return nil, &errNotAuthorized
		}
	}
	m, err := s.cfg.Gateway.MapIGD(portmap.IGDRequest{Proto: proto, Internal: in, External: ext, Any: anyPort,
		Lease: time.Duration(lease) * time.Second, Owner: owner, Description: c.Args["NewPortMappingDescription"]})
	if err != nil {
		return nil, mapError(err)
	}
	if anyPort {
		return response(c, "NewReservedPort", strconv.Itoa(int(m.Public))), nil
	}
	return response(c), nil
}

// mappingKey reads the mapping a call names: its remote host (which must
// be empty), protocol and external port.
func mappingKey(c Call) (proto string, ext uint16, e *upnpError) {
	if e := remoteHost(c); e != nil {
		return "", 0, e
	}
	proto, ok := protocol(c.Args["NewProtocol"])
	ext, extOK := port(c.Args["NewExternalPort"])
	if !ok || !extOK {
		return "", 0, &errInvalidArgs
	}
	return proto, ext, nil
}

// delete answers DeletePortMapping.
func (s *Server) delete(c Call, owner portmap.IGDOwner) ([]byte, *upnpError) {
	proto, ext, e := mappingKey(c)
	if e != nil {
		return nil, e
	}
	if err := s.cfg.Gateway.UnmapIGD(proto, ext, owner); err != nil {
		return nil, mapError(err)
	}
	return response(c), nil
}

// specific answers GetSpecificPortMappingEntry: any protocol's mapping
// of that external port (an app sees the whole table, as on a router).
func (s *Server) specific(c Call) ([]byte, *upnpError) {
	proto, ext, e := mappingKey(c)
	if e != nil {
		return nil, e
	}
	for _, m := range s.cfg.Gateway.Mappings() {
		if m.Proto == proto && m.Public == ext {
			return response(c, "NewInternalPort", strconv.Itoa(int(m.Internal)), "NewInternalClient", m.Client.String(),
				"NewEnabled", "1", "NewPortMappingDescription", describe(m), "NewLeaseDuration", s.leaseLeft(m)), nil
		}
	}
	return nil, &errNoSuchEntry
}

// generic answers GetGenericPortMappingEntry: the table's entry at the
// index.
func (s *Server) generic(c Call) ([]byte, *upnpError) {
	i, err := strconv.ParseUint(c.Args["NewPortMappingIndex"], 10, 16)
	if err != nil {
		return nil, &errInvalidArgs
	}
	ms := s.cfg.Gateway.Mappings()
	if i >= uint64(len(ms)) {
		return nil, &errArrayIndex
	}
	m := ms[i]
	return response(c, "NewRemoteHost", "", "NewExternalPort", strconv.Itoa(int(m.Public)), "NewProtocol", strings.ToUpper(m.Proto),
		"NewInternalPort", strconv.Itoa(int(m.Internal)), "NewInternalClient", m.Client.String(), "NewEnabled", "1",
		"NewPortMappingDescription", describe(m), "NewLeaseDuration", s.leaseLeft(m)), nil
}

// leaseLeft is the seconds left of m's lease, "0" for a permanent one.
func (s *Server) leaseLeft(m portmap.Mapping) string {
	end := m.Expires
	if m.Via == portmap.ViaUPnP {
		if m.LeaseEnd.IsZero() {
			return "0"
		}
		end = m.LeaseEnd
	}
	return strconv.FormatInt(max(1, int64(end.Sub(s.cfg.Now())/time.Second)), 10)
}

// describe is m's description: the app's, or the protocol that made it.
func describe(m portmap.Mapping) string {
	if m.Via == portmap.ViaUPnP {
		return m.Description
	}
	return strings.ToUpper(m.Via) + " " + strconv.Itoa(int(m.Internal)) + " " + m.Proto
}

// mapError is the UPnP error for a table's error.
func mapError(err error) *upnpError {
	switch {
	case errors.Is(err, portmap.ErrConflict):
		return &errConflict
	case errors.Is(err, portmap.ErrNoneFree):
		return &errNoPortMaps
	case errors.Is(err, portmap.ErrNotOwner):
		return &errNotAuthorized
	case errors.Is(err, portmap.ErrNoSuchEntry):
		return &errNoSuchEntry
	}
	return &errActionFailed
}

// remoteHost refuses a mapping for one remote host only: vpnfwd's
// mappings are for every remote host.
func remoteHost(c Call) *upnpError {
	if h := c.Args["NewRemoteHost"]; h != "" && h != "*" && h != "0.0.0.0" {
		return &errRemoteHost
	}
	return nil
}

// protocol is "tcp" or "udp" from TCP or UDP.
func protocol(p string) (string, bool) {
	switch strings.ToUpper(p) {
	case "TCP":
		return "tcp", true
	case "UDP":
		return "udp", true
	}
	return "", false
}

// port parses a port 1-65535; 0 and "*" (a wildcard) give 0, false.
func port(s string) (uint16, bool) {
	if s == "*" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 1, false
	}
	return uint16(n), n != 0
}
