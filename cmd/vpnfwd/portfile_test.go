package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
)

// A FIFO as --port-file is refused at start with an error naming it. It
// used to pass, and the first port then blocked vpnfwd in open(2) for
// good: SIGTERM (here, the context) did not end it.
func TestPortFileFIFORefused(t *testing.T) {
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
	fifo := filepath.Join(dir, "port")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"up", "--wg-config", conf, "--provider", "natpmp", "--api", "", "--socks5", "", "--http-proxy", "",
		"--state-dir", filepath.Join(dir, "state"), "--wg-name", "-", "--port-file", fifo}
	env, _, errb := testEnv(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, env, args) }()
	select {
	case code := <-done:
		if code == 0 || !strings.Contains(errb.String(), fifo+" is a FIFO") {
			t.Errorf("exit %d, log:\n%s\n(want an error naming the FIFO)", code, errb)
		}
		return
	case <-time.After(10 * time.Second):
		t.Errorf("vpnfwd still runs after 10 s with a FIFO as its port file; log:\n%s", errb)
	}
	cancel() // as SIGTERM does
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("vpnfwd did not stop when told to")
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			defer f.Close() // a reader lets the blocked open go on
			<-done
		}
	}
}
