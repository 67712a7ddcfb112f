package testnet

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/vpnfwd/vpnfwd/demo"
	"io"
	"log"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/vpnfwd/vpnfwd/tunnel"
)

// FakePIA is a PIA-like provider in one process: token, server list
// (signed), dedicated IP, addKey over TLS with its own CA (the key really
// becomes a peer of the test WireGuard server), and inside the tunnel
// getSignature and bindPort with expiry and busy ports. Binding a port
// opens it on the server's public side.
type FakePIA struct {
	// Server is the in-process WireGuard server (StartPIA); a namespace
	// test leaves it nil and sets the hooks below instead.
	Server *demo.Server
	// AddPeer makes the key a peer with that tunnel address; Forward opens
	// the port on the server's public side to the client.
	AddPeer func(pub tunnel.Key, ip netip.Addr) error
	Forward func(port uint16, client netip.Addr) error
	// ServerKey, Endpoint and VIP are what addKey answers.
	ServerKey  tunnel.Key
	Endpoint   netip.AddrPort
	VIP        netip.Addr
	CA         *CA
	SigningKey *rsa.PrivateKey
	// APIURL serves /api/client/v2/token, /api/client/v2/dedicated_ip and
	// /vpninfo/servers/v6 (TLS, certificate for 127.0.0.1 from CA).
	APIURL string
	// WGIP:1337 is the key API; CN is the server's certificate name.
	WGIP, CN                     string
	Username, Password, DIPToken string
	// DIPRegion is the region of the dedicated IP (default de_berlin).
	DIPRegion string
	// PayloadTTL is how long issued payloads last (default 60 days).
	PayloadTTL time.Duration

	dipUsed    bool       // the dedicated IP was looked up (guarded by mu)
	genMu      sync.Mutex // guards generation (sign runs with and without mu)
	generation int

	mu      sync.Mutex
	tokens  map[string]bool
	busy    map[uint16]bool
	bound   map[uint16]netip.Addr // port -> the peer it forwards to
	issued  int
	base    int // issued ports are base+1, base+2, ... (random, so concurrent tests do not collide)
	binds   int // bindPort calls
	logins  int // token requests
	nextIP  byte
	servers []*http.Server
}

// NewFakePIA makes the fake's state, CA and signing key; Serve* attach it
// to listeners.
func NewFakePIA(wgIP string) (*FakePIA, error) {
	f := &FakePIA{WGIP: wgIP, CN: "fake401", Username: "p1234567", Password: "hunter2", DIPToken: "DIPabc",
		PayloadTTL: 60 * 24 * time.Hour, tokens: map[string]bool{}, busy: map[uint16]bool{}, bound: map[uint16]netip.Addr{}, nextIP: 10,
		base: 20000 + mrand.IntN(30000)}
	var err error
	if f.CA, err = NewCA("Fake Private Internet Access"); err != nil {
		return nil, err
	}
	if f.SigningKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	return f, nil
}

// ServeAPI serves the token, dedicated IP and server list API on l (TLS
// with a certificate for names, from CA).
func (f *FakePIA) ServeAPI(l net.Listener, names ...string) {
	cert, _ := f.CA.Issue(names...)
	f.serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}}), f.apiMux())
}

// ServeKeyAPI serves addKey on l (the WireGuard server's :1337).
func (f *FakePIA) ServeKeyAPI(l net.Listener) {
	cert, _ := f.CA.Issue(f.CN)
	f.serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}}), f.keyMux())
}

// ServePortForward serves getSignature and bindPort on l (the server's
// tunnel address, :19999).
func (f *FakePIA) ServePortForward(l net.Listener) {
	cert, _ := f.CA.Issue(f.CN)
	f.serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}}), f.pfMux())
}

// StartPIA starts a fake PIA around an in-process WireGuard server. wgIP
// is a loopback address for the key API (each test its own).
func StartPIA(wgIP string) (*FakePIA, error) {
	f, err := NewFakePIA(wgIP)
	if err != nil {
		return nil, err
	}
	srv, err := demo.Start(demo.Options{NATPMP: "off"})
	if err != nil {
		return nil, err
	}
	f.Server = srv
	f.AddPeer = func(pub tunnel.Key, ip netip.Addr) error { return srv.Device.AddPeer(pub, netip.PrefixFrom(ip, 32)) }
	f.Forward = srv.Forward
	f.ServerKey, f.Endpoint, f.VIP = srv.Key.Public(), srv.Endpoint, demo.GatewayAddr
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Close()
		return nil, err
	}
	f.APIURL = "https://" + api.Addr().String()
	f.ServeAPI(api, "127.0.0.1")
	keyAPI, err := net.Listen("tcp", net.JoinHostPort(wgIP, "1337"))
	if err != nil {
		f.Close()
		return nil, err
	}
	f.ServeKeyAPI(keyAPI)
	pf, err := srv.Stack.ListenTCP(netip.AddrPortFrom(demo.GatewayAddr, 19999))
	if err != nil {
		f.Close()
		return nil, err
	}
	f.ServePortForward(pf)
	return f, nil
}

func (f *FakePIA) serve(l net.Listener, h http.Handler) {
	s := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	f.servers = append(f.servers, s)
	go s.Serve(l)
}

// Close stops everything.
func (f *FakePIA) Close() {
	for _, s := range f.servers {
		s.Close()
	}
	if f.Server != nil {
		f.Server.Close()
	}
}

// CAPEM is the fake "ca.rsa.4096.crt".
func (f *FakePIA) CAPEM() []byte { return f.CA.PEM }

// SigningKeyPEM is the server-list signing key (public, PEM).
func (f *FakePIA) SigningKeyPEM() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&f.SigningKey.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// SetBusy makes bindPort refuse port with 409.
func (f *FakePIA) SetBusy(port uint16) { f.mu.Lock(); f.busy[port] = true; f.mu.Unlock() }

// Port is the port of the n-th signature (from 1).
func (f *FakePIA) Port(n int) uint16 { return uint16(f.base + n) }

// Issued counts the signatures given out.
func (f *FakePIA) Issued() int { f.mu.Lock(); defer f.mu.Unlock(); return f.issued }

// Binds and Logins count bindPort calls and token requests so far. They
// are read under the lock: a handler may still be running when a test
// looks (a stopped provider's last request, a new one's first).
func (f *FakePIA) Binds() int  { f.mu.Lock(); defer f.mu.Unlock(); return f.binds }
func (f *FakePIA) Logins() int { f.mu.Lock(); defer f.mu.Unlock(); return f.logins }

func jsonReply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *FakePIA) apiMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /api/client/v2/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.logins++
		if r.PostForm.Get("username") != f.Username || r.PostForm.Get("password") != f.Password {
			jsonReply(w, 401, map[string]string{"message": "Unauthorized"})
			return
		}
		tok := fmt.Sprintf("tok%d", len(f.tokens)+1)
		f.tokens[tok] = true
		jsonReply(w, 200, map[string]string{"token": tok})
	})
	m.HandleFunc("POST /api/client/v2/dedicated_ip", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Tokens []string }
		json.NewDecoder(r.Body).Decode(&req)
		tok := r.Header.Get("Authorization")
		f.mu.Lock()
		ok := len(tok) > 6 && f.tokens[tok[6:]]
		f.mu.Unlock()
		if !ok || len(req.Tokens) != 1 || req.Tokens[0] != f.DIPToken {
			jsonReply(w, 200, []map[string]string{{"status": "invalid"}})
			return
		}
		f.mu.Lock()
		f.dipUsed = true
		f.mu.Unlock()
		region := f.DIPRegion
		if region == "" {
			region = "de_berlin"
		}
		jsonReply(w, 200, []map[string]string{{"status": "active", "ip": f.WGIP, "cn": f.CN, "id": region, "dip_expire": "1900000000"}})
	})
	m.HandleFunc("GET /vpninfo/servers/v6", func(w http.ResponseWriter, r *http.Request) {
		doc := map[string]any{
			"groups": map[string]any{"wg": []map[string]any{{"name": "wireguard", "ports": []int{1337}}}},
			"regions": []map[string]any{
				{"id": "de_berlin", "name": "DE Berlin", "country": "DE", "port_forward": true, "offline": false,
					"servers": map[string]any{"wg": []map[string]string{{"ip": f.WGIP, "cn": f.CN}}}},
				{"id": "us_east", "name": "US East", "country": "US", "port_forward": false, "offline": false,
					"servers": map[string]any{"wg": []map[string]string{{"ip": "127.0.0.9", "cn": "useast1"}}}},
			},
		}
		body, _ := json.Marshal(doc)
		sum := sha256.Sum256(body)
		sig, _ := rsa.SignPKCS1v15(rand.Reader, f.SigningKey, crypto.SHA256, sum[:])
		w.Write(body)
		w.Write([]byte("\n\n" + base64.StdEncoding.EncodeToString(sig) + "\n"))
	})
	return m
}

func (f *FakePIA) keyMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /addKey", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		// A dedicated IP's key comes with HTTP basic auth (user
		// dedicated_ip_TOKEN, password the server's IP) and no pt, as in
		// pia-foss/manual-connections; other keys with a pt token.
		user, pass, basic := r.BasicAuth()
		f.mu.Lock()
		// The dedicated IP's server takes no pt (it was looked up: this is
		// that server).
		okTok := f.tokens[q.Get("pt")] && !basic && !f.dipUsed
		if basic {
			okTok = user == "dedicated_ip_"+f.DIPToken && pass == f.WGIP && q.Get("pt") == ""
		}
		ip := netip.AddrFrom4([4]byte{10, 2, 0, f.nextIP})
		f.nextIP++
		f.mu.Unlock()
		pub, err := tunnel.ParseKey(q.Get("pubkey"))
		if !okTok || err != nil {
			jsonReply(w, 200, map[string]string{"status": "ERROR", "message": "Login failed! (bad token or key)"})
			return
		}
		if err := f.AddPeer(pub, ip); err != nil {
			jsonReply(w, 500, map[string]string{"status": "ERROR", "message": err.Error()})
			return
		}
		jsonReply(w, 200, map[string]any{"status": "OK", "server_key": f.ServerKey.String(), "server_port": f.Endpoint.Port(),
			"server_ip": f.Endpoint.Addr().String(), "server_vip": f.VIP.String(), "peer_ip": ip.String(),
			"peer_pubkey": pub.String(), "dns_servers": []string{f.VIP.String()}})
	})
	return m
}

type fakePayload struct {
	Token   string `json:"token"`
	Port    int    `json:"port"`
	Expires string `json:"expires_at"`
}

func (f *FakePIA) pfMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /getSignature", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.tokens[r.URL.Query().Get("token")] {
			jsonReply(w, 200, map[string]string{"status": "ERROR", "message": "bad token"})
			return
		}
		f.issued++
		port := f.base + f.issued
		p, _ := json.Marshal(fakePayload{Token: r.URL.Query().Get("token"), Port: port, Expires: time.Now().Add(f.PayloadTTL).UTC().Format(time.RFC3339Nano)})
		payload := base64.StdEncoding.EncodeToString(p)
		jsonReply(w, 200, map[string]string{"status": "OK", "payload": payload, "signature": f.sign(payload)})
	})
	m.HandleFunc("GET /bindPort", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		payload, sig := q.Get("payload"), q.Get("signature")
		if sig != f.sign(payload) {
			jsonReply(w, 200, map[string]string{"status": "ERROR", "message": "bad signature"})
			return
		}
		raw, _ := base64.StdEncoding.DecodeString(payload)
		var p fakePayload
		json.Unmarshal(raw, &p)
		exp, _ := time.Parse(time.RFC3339Nano, p.Expires)
		port := uint16(p.Port)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.binds++
		switch {
		case time.Now().After(exp):
			jsonReply(w, 200, map[string]string{"status": "ERROR", "message": "payload expired"})
			return
		case f.busy[port]:
			jsonReply(w, 409, map[string]string{"status": "ERROR", "message": "port is busy"})
			return
		}
		client := remoteIP(r)
		// PIA forwards the port to the peer that binds it: after a new
		// key (and tunnel address) the same payload moves it there.
		if f.bound[port] != client && client.IsValid() {
			if err := f.Forward(port, client); err != nil {
				jsonReply(w, 500, map[string]string{"status": "ERROR", "message": err.Error()})
				return
			}
			f.bound[port] = client
		}
		jsonReply(w, 200, map[string]string{"status": "OK", "message": "port scheduled for add"})
	})
	return m
}

func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// ForgetPayloads makes bindPort refuse every payload signed so far ("bad
// signature"), as a server that was replaced or lost its keys would.
func (f *FakePIA) ForgetPayloads() { f.genMu.Lock(); f.generation++; f.genMu.Unlock() }

// sign signs for this server (its cn) and key generation: a payload binds
// only on the server that signed it.
func (f *FakePIA) sign(payload string) string {
	f.genMu.Lock()
	gen := f.generation
	f.genMu.Unlock()
	sum := sha256.Sum256([]byte(fmt.Sprintf("fake-pia-sig:%s:%d:%s", f.CN, gen, payload)))
	return base64.StdEncoding.EncodeToString(sum[:])
}
