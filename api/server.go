package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/vpnfwd/vpnfwd/status"
	"github.com/vpnfwd/vpnfwd/unixsock"
)

// Server is the control API's HTTP handler.
type Server struct {
	src     Source
	events  Events
	o       Options
	log     *slog.Logger
	mux     *http.ServeMux
	streams chan struct{} // one token per open event stream
	roles   roleTable     // gluetun's auth file, if any
}

// Options configure a Server.
type Options struct {
	// Token, when set, is needed by every route but /healthz: as
	// "Authorization: Bearer TOKEN", gluetun's "X-API-Key: TOKEN" or
	// "?api_key=TOKEN".
	Token string
	// Listen is the address the API listens on ("IP:PORT" or
	// "unix:PATH"); it decides which Host headers are accepted.
	Listen string
	// AllowedHosts are Host names accepted besides loopback names and
	// addresses and the listen address ("*": any). A web page that
	// rebinds its own name to 127.0.0.1 sends its name, and is refused.
	AllowedHosts []string
	// Roles are gluetun's auth-file roles (ReadAuthFile): a request to a
	// route passes when one of its roles lets it, or with Token. With
	// roles, a route no role names needs Token.
	Roles []Role
	// AuthRequired makes every route but /healthz need Token or a role
	// even with no role at all (gluetun's environment with its default
	// {}: every route answers 401).
	AuthRequired bool
	// MaxStreams bounds the open event streams (default 16).
	MaxStreams int
	Log        *slog.Logger
}

// NewServer builds the handler.
func NewServer(src Source, events Events, o Options) *Server {
	if o.MaxStreams <= 0 {
		o.MaxStreams = 16
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{src: src, events: events, o: o, log: o.Log, mux: http.NewServeMux(), streams: make(chan struct{}, o.MaxStreams)}
	if len(o.Roles) > 0 || o.AuthRequired {
		s.roles = newRoleTable(o.Roles)
	}
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("GET /v1/port", s.port)
	// gluetun's routes, in its shapes (internal/server).
	s.mux.HandleFunc("GET /v1/portforward", s.gluetunPorts)
	s.mux.HandleFunc("GET /v1/openvpn/portforwarded", s.gluetunPort)
	s.mux.HandleFunc("GET /v1/publicip/ip", s.publicIP)
	s.mux.HandleFunc("GET /v1/vpn/status", s.vpnStatus)
	s.mux.HandleFunc("GET /v1/openvpn/status", s.vpnStatus)
	s.mux.HandleFunc("GET /v1/dns/status", s.dnsStatus)
	s.mux.HandleFunc("GET /v1/version", s.version)
	s.mux.HandleFunc("PUT /v1/vpn/status", s.setVPNStatus)
	s.mux.HandleFunc("PUT /v1/openvpn/status", s.setVPNStatus)
	for _, p := range []string{"PUT /v1/dns/status", "PUT /v1/portforward"} {
		s.mux.HandleFunc(p, s.notSupported)
	}
	s.mux.HandleFunc("GET /v1/events", s.sse)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		writeJSON(w, http.StatusMisdirectedRequest, map[string]string{"error": fmt.Sprintf("Host %q is not allowed: use 127.0.0.1 or localhost, or add it to api.allowed_hosts (--api-allowed-hosts)", r.Host)})
		return
	}
	// gluetun's clients sometimes add a trailing slash: the same route.
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		r.URL.Path = strings.TrimRight(p, "/")
	}
	if !s.authOn() && !s.local(r) {
		// Nothing to authenticate with: the API is this host's. Whatever
		// the Host header says (it guards against DNS rebinding, not
		// strangers), only a peer on loopback is served.
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "this control API has no authentication, so it answers programs on its own host only: set --api-token-file or an auth role (--api-auth-config, --api-auth-default-role)"})
		return
	}
	if s.o.AuthRequired && r.URL.Path != "/healthz" {
		// gluetun's order and words (its auth middleware): an unknown
		// route is 404 and a wrong method 405 before any credentials are
		// looked at, then 401; bodies are net/http's status texts.
		switch methods := routeMethods(r.URL.Path); {
		case len(methods) == 0:
			http.Error(w, http.StatusText(http.StatusNotFound), http.StatusNotFound)
			return
		case !slices.Contains(methods, r.Method):
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
	}
	if s.authOn() && r.URL.Path != "/healthz" {
		ok := s.o.Token != "" && s.authorized(r)
		if !ok && s.roles != nil {
			ok = s.roles.allow(w, r) == nil
		}
		if !ok && s.o.AuthRequired {
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		if !ok {
			if w.Header().Get("WWW-Authenticate") == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="vpnfwd"`)
			}
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong API credentials (token, API key or basic auth)"})
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// routeMethods are the methods a role may name for path (gluetun's
// routes and vpnfwd's own); none for a path that is no route.
func routeMethods(path string) []string {
	var out []string
	for _, r := range append(slices.Clone(gluetunRoutes), ownRoutes...) {
		if m, p, _ := strings.Cut(r, " "); p == path {
			out = append(out, m)
		}
	}
	return out
}

// hostAllowed applies the Host check against DNS rebinding (as
// Transmission does since CVE-2018-5702).
func (s *Server) hostAllowed(hostport string) bool {
	if strings.HasPrefix(s.o.Listen, "unix:") {
		return true // no web page reaches a unix socket
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
		return true
	}
	listenHost, _, _ := net.SplitHostPort(s.o.Listen)
	if la, err := netip.ParseAddr(listenHost); err == nil {
		if la.IsUnspecified() && s.authOn() {
			return true // on every address, behind a token: any name that leads here
		}
		if a, err := netip.ParseAddr(host); err == nil && a == la {
			return true
		}
	}
	for _, h := range s.o.AllowedHosts {
		if h == "*" || strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// authOn says whether requests are authenticated: a token, or roles.
func (s *Server) authOn() bool { return s.o.Token != "" || s.roles != nil }

// local says whether the request comes from this host: a unix socket, or
// a loopback peer address (the connection's, not anything the request
// says).
func (s *Server) local(r *http.Request) bool {
	if strings.HasPrefix(s.o.Listen, "unix:") {
		return true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func (s *Server) authorized(r *http.Request) bool {
	var got string
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = v
	} else if v := r.Header.Get("X-API-Key"); v != "" {
		got = v
	} else {
		got = r.URL.Query().Get("api_key")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.o.Token)) == 1
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.src.Status())
}

// writeCompact answers as gluetun's handlers do: json.Encoder, compact,
// one line.
func writeCompact(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// gluetunPorts answers GET /v1/portforward as gluetun does
// (internal/server/portforward.go): {"port":first,"ports":[...]}, and 200
// {"port":0,"ports":[]} while none is held (scripts read 0 as "not yet").
func (s *Server) gluetunPorts(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	ports := slices.Sorted(slices.Values(st.Port.Ports)) // as gluetun's service sorts them
	if ports == nil || st.Port.Port == 0 {
		ports = []int{}
	}
	writeCompact(w, http.StatusOK, struct {
		Port  int   `json:"port"`
		Ports []int `json:"ports"`
	}{st.Port.Port, ports})
}

// gluetunPort answers GET /v1/openvpn/portforwarded as gluetun does
// (internal/server/openvpn.go): {"port":N}, 0 while none is held.
func (s *Server) gluetunPort(w http.ResponseWriter, r *http.Request) {
	writeCompact(w, http.StatusOK, struct {
		Port int `json:"port"`
	}{s.src.Status().Port.Port})
}

// port answers /v1/port: the port, and its health; 503 while none is held.
func (s *Server) port(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	if st.Port.Port == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no forwarded port held yet", "state": st.State})
		return
	}
	ans := map[string]any{"port": st.Port.Port, "ports": st.Port.Ports}
	if !st.Port.Verified.IsZero() {
		ans["verified"] = st.Port.Verified
	}
	if st.Port.Dead != "" {
		ans["dead"] = st.Port.Dead
	}
	writeJSON(w, http.StatusOK, ans)
}

// publicIP answers like gluetun's /v1/publicip/ip (models.PublicIP): the
// VPN's public address where the provider told it, else what
// --public-ip-url said (with its region, country, ...), "" when neither.
func (s *Server) publicIP(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	info := status.PublicIP{IP: st.Port.PublicIP}
	if p := st.PublicIP; p != nil && (info.IP == "" || info.IP == p.IP) {
		info = *p
	}
	writeCompact(w, http.StatusOK, info)
}

// gluetunStatus is the tunnel's state in gluetun's loop words
// (constants.Starting, Running, Stopping, Stopped, Crashed): connecting
// and reconnecting are "starting", up is "running".
func gluetunStatus(st status.Status) string {
	if st.State == "stopping" {
		return "stopping"
	}
	switch st.Tunnel.State {
	case "up":
		return "running"
	case "connecting", "down", "starting":
		return "starting"
	case "stopping":
		return "stopping"
	}
	return "stopped"
}

// vpnStatus answers GET /v1/vpn/status and /v1/openvpn/status (gluetun's
// internal/server/vpn.go): {"status":"running"}.
func (s *Server) vpnStatus(w http.ResponseWriter, r *http.Request) {
	writeCompact(w, http.StatusOK, map[string]string{"status": gluetunStatus(s.src.Status())})
}

// dnsStatus answers GET /v1/dns/status: "running" when vpnfwd's DNS
// forwarder is on.
func (s *Server) dnsStatus(w http.ResponseWriter, r *http.Request) {
	status := "stopped"
	if s.src.Status().DNS != "" {
		status = "running"
	}
	writeCompact(w, http.StatusOK, map[string]string{"status": status})
}

// version answers GET /v1/version in gluetun's shape
// (models.BuildInformation): version, commit, created.
func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	commit, created := buildVCS()
	// gluetun's fields in gluetun's order (models.BuildInformation).
	writeCompact(w, http.StatusOK, struct {
		Version string `json:"version"`
		Commit  string `json:"commit"`
		Created string `json:"created"`
	}{s.src.Status().Version, commit, created})
}

// Controller is a Source whose tunnel can be stopped and started again
// (gluetun's PUT /v1/vpn/status); the outcome is gluetun's word.
type Controller interface {
	SetRunning(ctx context.Context, running bool) (outcome string, err error)
}

// setVPNStatus answers PUT /v1/vpn/status and /v1/openvpn/status as
// gluetun does (internal/server/vpn.go, wrappers.go): {"status":"stopped"}
// or {"status":"running"} in, {"outcome":"..."} out, 400 with the reason
// for anything else.
func (s *Server) setVPNStatus(w http.ResponseWriter, r *http.Request) {
	c, ok := s.src.(Controller)
	if !ok {
		s.notSupported(w, r)
		return
	}
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if body.Status != "stopped" && body.Status != "running" {
		http.Error(w, fmt.Sprintf("invalid status: %s: possible values are: stopped, running", body.Status), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	outcome, err := c.SetRunning(ctx, body.Status == "running")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.log.Info("tunnel "+outcome+" on request", "client", r.RemoteAddr)
	writeCompact(w, http.StatusOK, map[string]string{"outcome": outcome})
}

// notSupported answers gluetun's other PUT routes: vpnfwd's DNS forwarder
// and port follow the tunnel and take no orders of their own.
func (s *Server) notSupported(w http.ResponseWriter, r *http.Request) {
	http.Error(w, r.Method+" "+r.URL.Path+" is not supported by vpnfwd: the DNS forwarder and the port follow the tunnel (PUT /v1/vpn/status stops and starts it)", http.StatusBadRequest)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	if why := st.Unhealthy(); why != "" {
		http.Error(w, "unhealthy: "+why, http.StatusServiceUnavailable)
		return
	}
	verified := "not verified yet"
	if !st.Port.Verified.IsZero() {
		verified = fmt.Sprintf("verified %s ago (%s)", time.Since(st.Port.Verified).Round(time.Second), st.Port.VerifiedBy)
	}
	fmt.Fprintf(w, "ok: port %d, %s\n", st.Port.Port, verified)
}

func (s *Server) sse(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "too many event streams open"})
		return
	}
	sub := s.events.Subscribe()
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	st := s.src.Status()
	w.Write(sseEvent{"state", map[string]string{"state": st.State}}.encode())
	if st.Port.Port != 0 {
		w.Write(sseEvent{"port", st.Port}.encode())
	}
	fl.Flush()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Wake():
			for {
				ev, ok, done := sub.TryNext()
				if done {
					return
				}
				if !ok {
					break
				}
				if e, ok := render(ev); ok {
					w.Write(e.encode())
				}
			}
			fl.Flush()
		case <-ping.C:
			w.Write([]byte(": ping\n\n"))
			fl.Flush()
		}
	}
}

// Listen opens addr: "IP:PORT" or "unix:PATH" (a stale socket file is
// replaced; the socket is made 0660). An abstract socket ("unix:@NAME")
// or an auto-bound one ("unix:") is refused: it has no file mode, so
// every user of the network namespace could call the API.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if err := CheckSocketPath(path); err != nil {
			return nil, err
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		l, err := unixsock.Listen(path, 0o660)
		if err != nil {
			return nil, fmt.Errorf("control API on %s: %w", addr, err)
		}
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control API on %s: %w", addr, err)
	}
	return l, nil
}

// Serve runs the handler on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	// A client that sends no request, trickles its header or body, or
	// keeps a connection idle, is let go: local listeners are capped
	// (connlimit), and held connections must not keep others out.
	const slow = 10 * time.Second
	srv := &http.Server{Handler: limitBody(h, slow), ReadHeaderTimeout: slow, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// limitBody gives a request's body (the API's are a few bytes) d to
// arrive. Not http.Server's ReadTimeout, which would end every event
// stream d after it started.
func limitBody(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 { // a body, or chunked (-1)
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}

// buildVCS is the commit and its time as Go stamped them in the binary.
func buildVCS() (commit, created string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.time":
			created = s.Value
		}
	}
	return commit, created
}

// CheckSocketPath refuses a unix socket path the control API cannot keep
// to its owner and group: empty (Linux picks an abstract name) or
// abstract ("@NAME"), which no file mode guards.
func CheckSocketPath(path string) error {
	switch {
	case path == "":
		return errors.New("api.listen (--api) unix: names no file: give a path, e.g. unix:/run/vpnfwd/api.sock (its mode 0660 keeps the API to vpnfwd's user and group)")
	case strings.HasPrefix(path, "@") || strings.ContainsRune(path, 0):
		return fmt.Errorf("api.listen (--api) unix:%s is an abstract socket, which has no file mode: every user of this network namespace could stop the VPN through it; give a file path, e.g. unix:/run/vpnfwd/api.sock (mode 0660)", strings.ReplaceAll(path, "\x00", "\\0"))
	}
	return nil
}
