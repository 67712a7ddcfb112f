package forward

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"time"
)

// HTTPProxy is an HTTP proxy (CONNECT and plain requests) that reaches
// everything through the tunnel. With credentials it requires HTTP basic
// authentication (Proxy-Authorization). Serve gives a client
// handshakeTimeout for each request header and lets an idle kept-alive
// connection go after 30 s; a request's body and a CONNECT tunnel may
// last as long as they move (uploads, long downloads).
type HTTPProxy struct {
	Tunnel Tunnel
	Log    *slog.Logger
	auth   Credentials
	guard  *Guard
	rp     *httputil.ReverseProxy
}

// NewHTTPProxy makes the proxy handler. A non-nil guard refuses what
// belongs to vpnfwd alone (502 with the reason).
func NewHTTPProxy(t Tunnel, auth Credentials, guard *Guard, log *slog.Logger) *HTTPProxy {
	tr := &http.Transport{
		Proxy: nil, // never another proxy, never direct
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			return guard.dial(ctx, t, clientOf(ctx), network, addr)
		},
		ForceAttemptHTTP2:   false,
		MaxIdleConns:        64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	p := &HTTPProxy{Tunnel: t, Log: log, auth: auth, guard: guard}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Proxy-Authorization")
			pr.Out.Header.Del("Proxy-Connection")
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "vpnfwd proxy: "+err.Error(), http.StatusBadGateway)
		},
	}
	return p
}

// Serve serves the proxy on l until ctx ends (then closes every
// connection within a second) or l fails.
func (p *HTTPProxy) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: handshakeTimeout, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(p.logger().Handler(), slog.LevelDebug)}
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

func (p *HTTPProxy) logger() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// ServeHTTP implements http.Handler.
func (p *HTTPProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.auth.Required() && !p.auth.matchBasic(r.Header.Get("Proxy-Authorization")) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="vpnfwd"`)
		http.Error(w, "vpnfwd proxy: username and password required", http.StatusProxyAuthRequired)
		return
	}
	r = r.WithContext(withClient(r.Context(), r.RemoteAddr))
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if r.URL.Host == "" || (r.URL.Scheme != "http" && r.URL.Scheme != "") {
		http.Error(w, "vpnfwd proxy: want an absolute http:// URL or CONNECT", http.StatusBadRequest)
		return
	}
	p.rp.ServeHTTP(w, r)
}

func (p *HTTPProxy) connect(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), dialTimeout)
	up, err := p.guard.dial(ctx, p.Tunnel, r.RemoteAddr, "tcp", r.Host)
	cancel()
	if err != nil {
		http.Error(w, "vpnfwd proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "hijacking not supported", http.StatusInternalServerError)
		return
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	rw.Flush()
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		up.Write(b)
	}
	splice(c, up, nil, nil, nil)
}
