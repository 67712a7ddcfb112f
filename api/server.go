package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Server is the control API's HTTP handler.
type Server struct {
	src     Source
	events  *Broker
	o       Options
	log     *slog.Logger
	mux     *http.ServeMux
	streams chan struct{} // one token per open event stream
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
	// MaxStreams bounds the open event streams (default 16).
	MaxStreams int
	Log        *slog.Logger
}

// NewServer builds the handler.
func NewServer(src Source, events *Broker, o Options) *Server {
	if o.MaxStreams <= 0 {
		o.MaxStreams = 16
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{src: src, events: events, o: o, log: o.Log, mux: http.NewServeMux(), streams: make(chan struct{}, o.MaxStreams)}
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("GET /v1/port", s.port)
	s.mux.HandleFunc("GET /v1/portforward", s.gluetunPort)
	s.mux.HandleFunc("GET /v1/openvpn/portforwarded", s.gluetunPort)
	s.mux.HandleFunc("GET /v1/publicip/ip", s.publicIP)
	s.mux.HandleFunc("GET /v1/vpn/status", s.vpnStatus)
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
	if s.o.Token != "" && r.URL.Path != "/healthz" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vpnfwd"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong API token"})
		return
	}
	s.mux.ServeHTTP(w, r)
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
		if la.IsUnspecified() && s.o.Token != "" {
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

// gluetunPort answers gluetun's port routes: {"port","ports"} only.
func (s *Server) gluetunPort(w http.ResponseWriter, r *http.Request) { s.port(w, r) }

// port answers /v1/port: the port, and its health.
func (s *Server) port(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	if st.Port.Port == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no forwarded port held yet", "state": st.State})
		return
	}
	ans := map[string]any{"port": st.Port.Port, "ports": st.Port.Ports}
	if r.URL.Path != "/v1/port" {
		writeJSON(w, http.StatusOK, ans) // gluetun's shape, nothing more
		return
	}
	if !st.Port.Verified.IsZero() {
		ans["verified"] = st.Port.Verified
	}
	if st.Port.Dead != "" {
		ans["dead"] = st.Port.Dead
	}
	writeJSON(w, http.StatusOK, ans)
}

// publicIP answers like gluetun's /v1/publicip/ip: the VPN's public
// address where the provider told it.
func (s *Server) publicIP(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	writeJSON(w, http.StatusOK, map[string]string{"public_ip": st.Port.PublicIP, "provider": st.Port.Provider})
}

// vpnStatus answers like gluetun's /v1/vpn/status.
func (s *Server) vpnStatus(w http.ResponseWriter, r *http.Request) {
	status := "stopped"
	if s.src.Status().Tunnel.State == "up" {
		status = "running"
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": status})
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
	ch := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	st := s.src.Status()
	w.Write(Event{"state", map[string]string{"state": st.State}}.encode())
	if st.Port.Port != 0 {
		w.Write(Event{"port", st.Port}.encode())
	}
	fl.Flush()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			w.Write(ev.encode())
			fl.Flush()
		case <-ping.C:
			w.Write([]byte(": ping\n\n"))
			fl.Flush()
		}
	}
}

// Listen opens addr: "IP:PORT" or "unix:PATH" (a stale socket file is
// replaced; the socket is made 0660).
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("control API on %s: %w", addr, err)
		}
		os.Chmod(path, 0o660)
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
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
