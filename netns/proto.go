// Package netns is `vpnfwd exec`'s sandbox: a child of vpnfwd (the agent)
// in a new network and mount namespace (and, without root, a new user
// namespace) that holds only lo and a TUN. wireguard-go and its UDP socket
// stay in vpnfwd's own namespace (WireGuard's "new namespace" design): the
// agent passes the TUN's file descriptor back over a unix socket
// (SCM_RIGHTS), and everything that has to start inside the namespace is
// done by the agent and handed over the same way — sockets for the
// provider's requests and the DNS forwarder, the bind mount of
// resolv.conf, CMD itself. Nothing CMD does can leave but through the
// TUN, with no firewall.
package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vpnfwd/vpnfwd/nft"
)

// AgentEnv marks the agent process (vpnfwd runs netns.Agent when set).
const AgentEnv = "VPNFWD_NETNS_AGENT"

// request is what vpnfwd asks the agent; reply answers it (same ID), with
// file descriptors attached where the operation makes one.
type request struct {
	ID int    `json:"id"`
	Op string `json:"op"` // setup, dial, listenudp, addresses, redirect, guard, answer, listenlocal, start, signal

	// setup
	Tun        string         `json:"tun,omitempty"`
	MTU        int            `json:"mtu,omitempty"`
	Addresses  []netip.Prefix `json:"addresses,omitempty"`
	Routes     []netip.Prefix `json:"routes,omitempty"`
	Gateway    netip.Addr     `json:"gateway,omitzero"`      // named in the IPv4 default route
	ResolvConf string         `json:"resolv_conf,omitempty"` // file bind-mounted on /etc/resolv.conf
	DNS        string         `json:"dns,omitempty"`         // where the forwarder's sockets listen inside

	// dial, listenudp
	Network   string `json:"network,omitempty"`
	Address   string `json:"address,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`

	// redirect
	Redirects []Redirect `json:"redirects,omitempty"`

	// answer
	Port uint16 `json:"port,omitempty"`

	// guard
	Reserved []nft.Reserved `json:"reserved,omitempty"`

	// start
	Argv []string `json:"argv,omitempty"`
	Env  []string `json:"env,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	UID  *uint32  `json:"uid,omitempty"`
	GID  *uint32  `json:"gid,omitempty"`
	// Confine runs CMD as root of a user namespace of its own mapped to
	// an id of its own (confined.go; root-run exec without a user: CMD would otherwise hold every
	// capability, and could enter the host's namespaces).
	Confine bool `json:"confine,omitempty"`

	// signal
	Signal int `json:"signal,omitempty"`
}

// Redirect is one forwarded port sent on to another port inside.
type Redirect struct {
	Proto    string `json:"proto"`
	From, To uint16
}

type reply struct {
	ID    int    `json:"id"`
	Err   string `json:"err,omitempty"`
	PID   int    `json:"pid,omitempty"`
	Event string `json:"event,omitempty"` // "exited": CMD ended (ID 0)
	// Status is CMD's exit status (128+N when killed by signal N).
	Status int `json:"status,omitempty"`
}

// maxMsg bounds one message (the setup request is the largest).
const maxMsg = 64 << 10

// send writes v as one message with files attached.
func send(c *net.UnixConn, v any, files ...*os.File) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxMsg {
		return fmt.Errorf("netns: a message of %d bytes is over the %d-byte limit", len(b), maxMsg)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

// recv reads one message into v and returns the files attached.
func recv(c *net.UnixConn, v any) ([]*os.File, error) {
	b := make([]byte, maxMsg)
	oob := make([]byte, unix.CmsgSpace(4*8))
	n, oobn, flags, _, err := c.ReadMsgUnix(b, oob)
	if err != nil {
		return nil, err
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return nil, fmt.Errorf("netns: a message was cut (over %d bytes, or too many files)", maxMsg)
	}
	if n == 0 {
		return nil, errors.New("netns: the other side closed")
	}
	var files []*os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				return nil, err
			}
			for _, fd := range fds {
				unix.CloseOnExec(fd)
				files = append(files, os.NewFile(uintptr(fd), "netns-fd"))
			}
		}
	}
	if err := json.Unmarshal(b[:n], v); err != nil {
		closeAll(files)
		return nil, fmt.Errorf("netns: bad message: %w", err)
	}
	return files, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
