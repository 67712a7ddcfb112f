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
	"os"
	"strings"
	"time"
)

// Server is the control API's HTTP handler.
type Server struct {
	src    Source
	events *Broker
	token  string
	log    *slog.Logger
	mux    *http.ServeMux
}

// NewServer builds the handler. With a token, every route but /healthz
// needs "Authorization: Bearer TOKEN" (or gluetun's X-API-Key header).
func NewServer(src Source, events *Broker, token string, log *slog.Logger) *Server {
	s := &Server{src: src, events: events, token: token, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("GET /v1/port", s.port)
	s.mux.HandleFunc("GET /v1/portforward", s.gluetun)
	s.mux.HandleFunc("GET /v1/openvpn/portforwarded", s.gluetun)
	s.mux.HandleFunc("GET /v1/events", s.sse)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.token != "" && r.URL.Path != "/healthz" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vpnfwd"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong API token"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authorized(r *http.Request) bool {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if got == "" {
		got = r.Header.Get("X-API-Key")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
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

func (s *Server) port(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	if st.Port.Port == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no forwarded port held yet", "state": st.State})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"port": st.Port.Port, "ports": st.Port.Ports})
}

// gluetun answers like gluetun's control server: {"port":N}. Port 0 is
// never handed out: without a port the answer is 503.
func (s *Server) gluetun(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	if st.Port.Port == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no forwarded port held yet"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"port": st.Port.Port})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	if !st.Healthy() {
		http.Error(w, fmt.Sprintf("unhealthy: tunnel %s, port %d\n", st.Tunnel.State, st.Port.Port), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ok: port %d\n", st.Port.Port)
}

func (s *Server) sse(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
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
