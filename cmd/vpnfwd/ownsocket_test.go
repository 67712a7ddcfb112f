package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
)

// The owner's socket: a program of the pod holding every connection the
// TCP API takes (found in review: one process with 300 slow requests on
// 127.0.0.1 made /healthz and so the container's health check fail)
// leaves `vpnfwd port`, the health check, answering through the socket
// in the state directory, which it uses by default.
func TestOwnSocketOutlastsACrowdedAPI(t *testing.T) {
	srv, err := demo.Start(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := srv.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "client.conf")
	os.WriteFile(conf, []byte(demo.WGQuick(client)), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := l.Addr().String()
	l.Close()
	stateDir := filepath.Join(dir, "state")
	in := startRaw(t, []string{"up", "--provider", "natpmp", "--wg-config", conf, "--api", apiAddr, "--socks5", "", "--http-proxy", "", "--state-dir", stateDir})
	withState := map[string]string{"VPNFWD_STATE_DIR": stateDir}
	port := func(args ...string) (int, string) {
		env, out, errb := testEnv(withState)
		code := run(context.Background(), env, append([]string{"port"}, args...))
		return code, strings.TrimSpace(out.String() + errb.String())
	}
	var held string
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, out := port()
		if code == 0 {
			held = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no port through the owner's socket: %d %s\n%s", code, out, in.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fi, err := os.Stat(filepath.Join(stateDir, "api.sock")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the owner's socket: %v %v", err, fi)
	}
	// Another program holds every connection the TCP API takes.
	var held2 []net.Conn
	defer func() {
		for _, c := range held2 {
			c.Close()
		}
	}()
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", apiAddr)
		if err != nil {
			break
		}
		c.Write([]byte("GET /healthz HTTP/1.1\r\n"))
		held2 = append(held2, c)
	}
	crowded := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if code, _ := port("--api", apiAddr); code != 0 {
			crowded = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !crowded {
		t.Fatal("the TCP API still answered: the test crowded nothing")
	}
	for i := 0; i < 5; i++ {
		if code, out := port(); code != 0 || out != held {
			t.Fatalf("vpnfwd port while the TCP API is crowded: %d %q, want %s", code, out, held)
		}
	}
}
