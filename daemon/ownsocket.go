package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"

	"github.com/vpnfwd/vpnfwd/api"
	"github.com/vpnfwd/vpnfwd/unixsock"
)

// The owner's socket: the control API also answers on a unix socket in
// the state directory, mode 0600, so vpnfwd's own user (the container's
// health check, `vpnfwd port` and `status` on this host) always reaches
// it. A program of the pod can hold every connection the TCP API takes
// from loopback (its caps are per listener, and every program of the
// namespace is "this host" there), which would make the health check
// fail; it cannot reach a socket file in a directory that is not its.

// OwnSocket is the owner's socket's name in the state directory.
const OwnSocket = "api.sock"

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = 107

// openOwnSocket makes the owner's socket ("" state directory, or a path
// too long for a socket address: none). A failure costs only this socket.
func (d *Daemon) openOwnSocket() {
	if d.cfg.StateDir == "" || d.cfg.API.Listen == "" {
		return
	}
	path := filepath.Join(d.cfg.StateDir, OwnSocket)
	if len(path) > maxSocketPath || "unix:"+path == d.cfg.API.Listen {
		return
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path) // a socket left by a vpnfwd killed before
	}
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		d.log.Warn("the owner's control socket was not made; the health check uses the TCP API", "path", path, "err", err)
		return
	}
	l, err := unixsock.Listen(path, 0o600)
	if err != nil {
		d.log.Warn("the owner's control socket was not made; the health check uses the TCP API", "path", path, "err", err)
		return
	}
	d.ownL = l
}

// serveOwnSocket serves the API on the owner's socket: no credentials
// (only vpnfwd's user and root reach the file).
func (d *Daemon) serveOwnSocket(ctx context.Context, goFunc func(func())) {
	if d.ownL == nil {
		return
	}
	path := d.ownL.Addr().String()
	h := api.NewServer(d, d.sess, api.Options{Listen: "unix:" + path, Log: d.log.With("component", "api")})
	l := capped(d.ownL)
	goFunc(func() { api.Serve(ctx, l, h) })
}

// closeOwnSocket closes the owner's socket and removes its file.
func (d *Daemon) closeOwnSocket() {
	if d.ownL == nil {
		return
	}
	path := d.ownL.Addr().String()
	d.ownL.Close()
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
}

// OwnSocketAnswers reports whether a vpnfwd answers on the owner's
// socket in the state directory dir (the CLI's default when it does).
func OwnSocketAnswers(dir string) bool {
	c, err := net.Dial("unix", filepath.Join(dir, OwnSocket))
	if err != nil {
		return false
	}
	c.Close()
	return true
}
