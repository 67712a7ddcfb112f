package daemon

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/config"
)

// With --dns-resolv-conf, vpnfwd's own lookups around the tunnel (the
// endpoint's name, when it must be found again) keep using the name
// servers the file named before vpnfwd pointed it at its forwarder, also
// when a vpnfwd killed with -9 left the file pointing there.
func TestResolvConfKeepsTheSystemNameservers(t *testing.T) {
	dir := t.TempDir()
	old := resolvConf
	resolvConf = filepath.Join(dir, "resolv.conf")
	t.Cleanup(func() { resolvConf = old })
	orig := "# from the container engine\nnameserver 127.0.0.11\nnameserver 192.168.1.1\noptions ndots:0\n"
	os.WriteFile(resolvConf, []byte(orig), 0o644)

	newDaemon := func(on bool) *Daemon {
		cfg := &config.Config{StateDir: filepath.Join(dir, "state")}
		cfg.DNS.Listen, cfg.DNS.ResolvConf = "127.0.0.1:53", on
		return &Daemon{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.11:53"), netip.MustParseAddrPort("192.168.1.1:53")}
	if got := newDaemon(false).systemNameservers(); got != nil {
		t.Fatalf("without --dns-resolv-conf: %v, want nil (the resolver reads the file)", got)
	}
	d := newDaemon(true)
	if got := d.systemNameservers(); !slices.Equal(got, want) {
		t.Fatalf("before: %v, want %v", got, want)
	}
	if err := d.pointResolvConf(); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(resolvConf)
	if !strings.Contains(string(cur), "nameserver 127.0.0.1\n") || strings.Contains(string(cur), "192.168.1.1") {
		t.Fatalf("resolv.conf while running:\n%s", cur)
	}
	if got := d.systemNameservers(); !slices.Equal(got, want) {
		t.Fatalf("while pointed at the forwarder: %v, want %v", got, want)
	}

	// kill -9: no restore. The next vpnfwd still finds the original.
	d2 := newDaemon(true)
	if got := d2.systemNameservers(); !slices.Equal(got, want) {
		t.Fatalf("after kill -9: %v, want %v", got, want)
	}
	if err := d2.pointResolvConf(); err != nil {
		t.Fatal(err)
	}
	d2.restoreResolvConf()
	if cur, _ := os.ReadFile(resolvConf); string(cur) != orig {
		t.Fatalf("restored resolv.conf:\n%s\nwant:\n%s", cur, orig)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "resolv.conf.orig")); !os.IsNotExist(err) {
		t.Fatalf("the saved copy outlived a clean exit: %v", err)
	}
}
