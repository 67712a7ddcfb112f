package pia_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/internal/testnet"
	"github.com/vpnfwd/vpnfwd/netstack"
	"github.com/vpnfwd/vpnfwd/provider"
	"github.com/vpnfwd/vpnfwd/provider/pia"
	"github.com/vpnfwd/vpnfwd/state"
	"github.com/vpnfwd/vpnfwd/wg"
)

// testRoots trusts the latest fake's CA for its API (the tests of this
// package run one after another).
var testRoots *x509.CertPool

var loopbackN = struct {
	sync.Mutex
	n int
}{n: 1}

// fake starts a fake PIA on its own loopback address.
func fake(t *testing.T) (*pia.Provider, *testnet.FakePIA, provider.Settings, string) {
	t.Helper()
	loopbackN.Lock()
	loopbackN.n++
	// Each test process its own /24, so concurrent runs never share a fake.
	ip := fmt.Sprintf("127.88.%d.%d", os.Getpid()%250, loopbackN.n)
	loopbackN.Unlock()
	f, err := testnet.StartPIA(ip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	testRoots = f.CA.Pool
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.rsa.4096.crt")
	os.WriteFile(ca, f.CAPEM(), 0o644)
	key := filepath.Join(dir, "pia-signing.pem")
	os.WriteFile(key, f.SigningKeyPEM(), 0o644)
	cfg := provider.Settings{"username": f.Username, "password": f.Password, "ca_file": ca, "serverlist_key_file": key,
		"token_url": f.APIURL + "/api/client/v2/token", "serverlist_url": f.APIURL + "/vpninfo/servers/v6", "dip_url": f.APIURL + "/api/client/v2/dedicated_ip"}
	return nil, f, cfg, filepath.Join(dir, "state")
}

type run struct {
	lease chan provider.Lease
	stop  func()
}

// start makes the tunnel with the provider and runs it.
func start(t *testing.T, cfg provider.Settings, stateDir string) (*run, *demo.Client) {
	t.Helper()
	env := provider.Env{Settings: cfg, Log: slog.New(slog.DiscardHandler), State: state.Dir{Path: stateDir}, Roots: testRoots}
	p, err := pia.New(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := p.MakeTunnel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := netstack.New(netstack.Config{Addresses: w.Addresses(), DNS: w.DNSServers()})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := wg.New(ctx, st.TUN(), w, wg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Run dials through the tunnel.
	p2 := rewire(t, p, st)
	r := &run{lease: make(chan provider.Lease, 16)}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p2.Run(rctx, func(l provider.Lease) { r.lease <- l }); close(done) }()
	r.stop = func() { cancel(); <-done; dev.Close() }
	t.Cleanup(r.stop)
	return r, &demo.Client{Config: w, Stack: st, Device: dev}
}

func rewire(t *testing.T, p *pia.Provider, st *netstack.Stack) *pia.Provider {
	p.SetDialer(st)
	p.SetTunnel(nil, nil)
	return p
}

func next(t *testing.T, r *run) provider.Lease {
	t.Helper()
	select {
	case l := <-r.lease:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no lease")
	}
	return provider.Lease{}
}

func TestPIAFullFlowAndSamePortAfterRestart(t *testing.T) {
	_, f, cfg, dir := fake(t)
	r, _ := start(t, cfg, dir)
	l := next(t, r)
	if len(l.Ports) != 1 || l.Ports[0].Public != f.Port(1) {
		t.Fatalf("lease %+v", l)
	}
	port := l.Ports[0].Public
	r.stop()
	fi, err := os.Stat(filepath.Join(dir, "pia-portforward.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("payload not saved 0600: %v %v", err, fi)
	}
	logins := f.Logins()
	r2, _ := start(t, cfg, dir)
	if l2 := next(t, r2); l2.Ports[0].Public != port {
		t.Errorf("after a restart the port changed: %d then %d", port, l2.Ports[0].Public)
	}
	if f.Issued() != 1 {
		t.Errorf("a second signature was asked for (%d): the saved payload should be reused", f.Issued())
	}
	if f.Logins() != logins {
		t.Errorf("logged in again (%d -> %d): the token is cached", logins, f.Logins())
	}
}

func TestPIAPayloadNearExpiryIsReplaced(t *testing.T) {
	_, f, cfg, dir := fake(t)
	f.PayloadTTL = 6 * 24 * time.Hour // less than the 7 days vpnfwd wants left
	r, _ := start(t, cfg, dir)
	first := next(t, r).Ports[0].Public
	r.stop()
	r2, _ := start(t, cfg, dir)
	second := next(t, r2).Ports[0].Public
	if second == first || f.Issued() != 2 {
		t.Errorf("a saved payload with 6 days left should be replaced: ports %d then %d, %d signatures", first, second, f.Issued())
	}
}

// A saved payload the server refuses, for whatever reason, is dropped for
// a new signature at once (not retried until it expires).
func TestPIARefusedSavedPayloadIsReplaced(t *testing.T) {
	_, f, cfg, dir := fake(t)
	r, _ := start(t, cfg, dir)
	next(t, r)
	r.stop()
	f.ForgetPayloads() // the server no longer accepts what it signed
	r2, _ := start(t, cfg, dir)
	if l := next(t, r2); !l.Held() || l.Ports[0].Public != f.Port(2) || f.Issued() != 2 {
		t.Errorf("lease %+v after %d signatures: want a new signature's port", l, f.Issued())
	}
}

// A payload binds only on the server that signed it: one saved from
// another server is not replayed here.
func TestPIAPayloadFromAnotherServerNotReused(t *testing.T) {
	_, f, cfg, dir := fake(t)
	r, _ := start(t, cfg, dir)
	next(t, r)
	r.stop()
	path := filepath.Join(dir, "pia-portforward.json")
	var saved map[string]any
	b, err := os.ReadFile(path)
	if json.Unmarshal(b, &saved); err != nil || saved["server"] != f.CN {
		t.Fatalf("saved payload does not name its server %s: %s %v", f.CN, b, err)
	}
	saved["server"] = "berlin999"
	b, _ = json.Marshal(saved)
	os.WriteFile(path, b, 0o600)
	binds := f.Binds()
	r2, _ := start(t, cfg, dir)
	if l := next(t, r2); l.Ports[0].Public != f.Port(2) || f.Issued() != 2 || f.Binds() != binds+1 {
		t.Errorf("lease %+v, %d signatures, %d binds: the other server's payload was tried", l, f.Issued(), f.Binds()-binds)
	}
}

func TestPIABusyPortGetsNewSignature(t *testing.T) {
	_, f, cfg, dir := fake(t)
	f.SetBusy(f.Port(1))
	r, _ := start(t, cfg, dir)
	if l := next(t, r); l.Ports[0].Public != f.Port(2) {
		t.Errorf("lease %+v: want the second signature's port", l)
	}
}

func TestPIADedicatedIP(t *testing.T) {
	for _, inFile := range []bool{false, true} {
		_, f, cfg, dir := fake(t)
		if inFile { // dip_token_file (--dip-token-file), as an editor leaves it
			path := filepath.Join(t.TempDir(), "dip")
			os.WriteFile(path, []byte(f.DIPToken+"\n"), 0o600)
			cfg["dip_token_file"] = path
		} else {
			cfg["dip_token"] = f.DIPToken
		}
		cfg["region"] = "us_east" // ignored with a dedicated IP
		r, _ := start(t, cfg, dir)
		if l := next(t, r); !l.Held() {
			t.Errorf("dedicated IP lease %+v (token in a file: %v)", l, inFile)
		}
	}
}

// A dedicated IP in a region where PIA forwards no ports is refused with
// the reason, before any key is registered.
func TestPIADedicatedIPWithoutPortForwarding(t *testing.T) {
	_, f, cfg, dir := fake(t)
	f.DIPRegion = "us_east"
	cfg["dip_token"] = f.DIPToken
	p, err := pia.New(provider.Env{Settings: cfg, Log: slog.New(slog.DiscardHandler), State: state.Dir{Path: dir}, Roots: testRoots})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.MakeTunnel(context.Background()); err == nil || !strings.Contains(err.Error(), "forwards no ports") {
		t.Errorf("error %v", err)
	}
}

func TestPIAErrors(t *testing.T) {
	_, f, cfg, dir := fake(t)
	try := func(c provider.Settings) error {
		p, err := pia.New(provider.Env{Settings: c, Log: slog.New(slog.DiscardHandler), State: state.Dir{Path: t.TempDir()}, Roots: testRoots})
		if err != nil {
			return err
		}
		_, err = p.MakeTunnel(context.Background())
		return err
	}
	bad := cfg.With("password", "wrong")
	if err := try(bad); err == nil || !strings.Contains(err.Error(), "refused the username or password") {
		t.Errorf("wrong password: %v", err)
	}
	bad = cfg.With("region", "us_east")
	if err := try(bad); err == nil || !strings.Contains(err.Error(), "does not forward ports") || !strings.Contains(err.Error(), "de_berlin") {
		t.Errorf("region without forwarding: %v", err)
	}
	bad = cfg.With("region", "mars")
	if err := try(bad); err == nil || !strings.Contains(err.Error(), `no PIA region "mars"`) {
		t.Errorf("unknown region: %v", err)
	}
	bad = cfg.With("ca_file", "")
	if err := try(bad); err == nil || !strings.Contains(err.Error(), "ca.rsa.4096.crt") || !strings.Contains(err.Error(), "manual-connections") {
		t.Errorf("missing CA: %v", err)
	}
	other, _ := testnet.NewCA("not PIA")
	wrongCA := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(wrongCA, other.PEM, 0o644)
	bad = cfg.With("ca_file", wrongCA)
	if err := try(bad); err == nil || !strings.Contains(err.Error(), "CA mismatch") {
		t.Errorf("wrong CA: %v", err)
	}
	otherKey := filepath.Join(t.TempDir(), "k.pem")
	g, _ := testnet.StartPIA(fmt.Sprintf("127.88.%d.250", os.Getpid()%250))
	defer g.Close()
	os.WriteFile(otherKey, g.SigningKeyPEM(), 0o644)
	bad = cfg.With("serverlist_key_file", otherKey)
	if err := try(bad); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Errorf("wrong signing key: %v", err)
	}
	bad = cfg.With("username", "")
	if err := try(bad); err == nil || !strings.Contains(err.Error(), "--username") {
		t.Errorf("no username: %v", err)
	}
	_ = dir
	_ = f
}

// The real server list sample, read where it lives (never copied).
func TestRealServerListSample(t *testing.T) {
	b, err := os.ReadFile("../../../shared/data/pia/regions-v6.json")
	if err != nil {
		t.Skip("shared/data/pia/regions-v6.json not beside the repo")
	}
	l, err := pia.ParseServerList(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	fwd := l.ForwardingRegions()
	if len(l.Regions) < 50 || len(fwd) == 0 || len(fwd) >= len(l.Regions) {
		t.Fatalf("%d regions, %d forwarding", len(l.Regions), len(fwd))
	}
	if l.WGPort() != 1337 {
		t.Errorf("wg port %d", l.WGPort())
	}
	for _, r := range l.Regions {
		if strings.HasPrefix(r.ID, "us") && r.PortForward {
			t.Errorf("US region %s forwards ports?", r.ID)
		}
	}
	if _, err := l.Pick(fwd[0].ID); err != nil {
		t.Error(err)
	}
	// gluetun's SERVER_REGIONS names regions by name, in any case.
	if r, err := l.Pick(strings.ToUpper(fwd[0].Name)); err != nil || r.ID != fwd[0].ID {
		t.Errorf("by name %q: %s %v", fwd[0].Name, r.ID, err)
	}
	for _, r := range l.Regions {
		if !r.PortForward {
			if _, err := l.Pick(r.ID); err == nil || !strings.Contains(err.Error(), "does not forward ports") {
				t.Errorf("%s: %v", r.ID, err)
			}
			break
		}
	}
	if _, err := pia.ParseServerList(b, &testKey().PublicKey); err == nil {
		t.Error("an unsigned list was accepted with a key given")
	}
}

// A payload that runs out within the session is replaced before it does,
// and the new port is reported.
func TestPIAShortPayloadReplacedInSession(t *testing.T) {
	_, f, cfg, dir := fake(t)
	f.PayloadTTL = time.Minute + 6*time.Second
	r, _ := start(t, cfg, dir)
	first := next(t, r).Ports[0].Public
	var second uint16
	deadline := time.After(20 * time.Second)
	for second == 0 || second == first {
		select {
		case l := <-r.lease:
			second = l.Ports[0].Public
		case <-deadline:
			t.Fatalf("payload not replaced before it ran out (still %d)", first)
		}
	}
	if f.Issued() != 2 {
		t.Errorf("%d signatures", f.Issued())
	}
}
