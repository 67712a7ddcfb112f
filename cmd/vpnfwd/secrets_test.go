package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
	"github.com/vpnfwd/vpnfwd/internal/testkit"
)

// A configuration that sets every secret there is; vpnfwd runs with it
// (the torrent clients are unreachable, so their errors are logged and
// shown too). No secret may appear in the log, the status, the metrics,
// the event stream, or the hook's environment.
func TestSecretsNeverShown(t *testing.T) {
	srv, err := demo.Start(demo.Options{NATPMP: "generic"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	client, err := srv.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "client.conf")
	os.WriteFile(conf, []byte(demo.WGQuick(client)), 0o600)
	secrets := map[string]string{
		"provider password":     "sekrit-provider-pw",
		"PIA dedicated IP":      "sekrit-dip-token",
		"qBittorrent URL":       "sekrit-qb-in-url",
		"Transmission password": "sekrit-transmission",
		"Deluge password":       "sekrit-deluge",
		"API token":             "sekrit-api-token",
		"proxy password":        "sekrit-proxy-pw",
		"WireGuard key":         client.PrivateKey.Base64(),
	}
	proxyPw := filepath.Join(dir, "proxy-pw")
	os.WriteFile(proxyPw, []byte(secrets["proxy password"]+"\n"), 0o600)
	tokenFile := filepath.Join(dir, "api-token")
	os.WriteFile(tokenFile, []byte(secrets["API token"]+"\n"), 0o600)
	hookEnv := filepath.Join(dir, "hook-env")
	env := map[string]string{
		"VPNFWD_PASSWORD":              secrets["provider password"],
		"VPNFWD_DIP_TOKEN":             secrets["PIA dedicated IP"],
		"VPNFWD_QBITTORRENT":           "http://admin:" + secrets["qBittorrent URL"] + "@127.0.0.1:1/",
		"VPNFWD_TRANSMISSION":          "http://127.0.0.1:1/transmission/rpc",
		"VPNFWD_TRANSMISSION_PASSWORD": secrets["Transmission password"],
		"VPNFWD_DELUGE":                "http://127.0.0.1:1",
		"VPNFWD_DELUGE_PASSWORD":       secrets["Deluge password"],
	}
	for k, v := range env {
		t.Setenv(k, v) // the hook inherits the real environment
	}
	sock := filepath.Join(dir, "api.sock")
	args := []string{"up", "--wg-config", conf, "--provider", "natpmp", "--api", "unix:" + sock, "--api-token-file", tokenFile,
		"--socks5", "127.0.0.1:0", "--http-proxy", "", "--proxy-username", "me", "--proxy-password-file", proxyPw, "--state-dir", filepath.Join(dir, "state"), "--log-level", "debug",
		"--on-port", "sh -c 'env > " + hookEnv + "'"}
	cenv, out, errb := testEnv(env)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, cenv, args) }()
	defer func() { cancel(); <-done; testkit.CheckNoLeaks(t) }()

	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	fetch := func(path string) string {
		req, _ := http.NewRequest("GET", "http://localhost"+path, nil)
		req.Header.Set("Authorization", "Bearer "+secrets["API token"])
		resp, err := c.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// Wait until the hook ran and every torrent client failed once.
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := fetch("/v1/status")
		_, err := os.Stat(hookEnv)
		if err == nil && strings.Count(st, `"ok": false`) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vpnfwd did not get going:\n%s\n%s", st, errb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	evCtx, evCancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer evCancel()
	req, _ := http.NewRequestWithContext(evCtx, "GET", "http://localhost/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+secrets["API token"])
	var events []byte
	if resp, err := c.Do(req); err == nil {
		events, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	hook, _ := os.ReadFile(hookEnv)
	places := map[string]string{
		"status":     fetch("/v1/status"),
		"metrics":    fetch("/metrics"),
		"events":     string(events),
		"hook's env": string(hook),
		"log":        errb.String(),
		"stdout":     out.String(),
		"status table": func() string {
			_, o, _ := vpnfwd(t, "status", "--api", "unix:"+sock, "--api-token-file", tokenFile)
			return o
		}(),
	}
	if !strings.Contains(places["status"], "127.0.0.1:1") || !strings.Contains(places["hook's env"], "VPNFWD_PORT=") {
		t.Fatalf("the test did not see what it checks:\n%s\n%s", places["status"], places["hook's env"])
	}
	for where, text := range places {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("the %s shows the %s", where, what)
			}
		}
	}
}
