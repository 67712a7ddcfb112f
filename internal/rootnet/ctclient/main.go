// Command ctclient is the second container of the container tests: a
// static program (no libc in its image) that serves a port, fetches a URL
// and looks a name up, as a real app in vpnfwd's namespace would. A real
// qBittorrent container would add its Web UI and the publisher's API
// calls; the namespace's routes, DNS and kill switch it meets are these.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: ctclient serve ADDR TEXT | get URL | lookup NAME")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		l, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		text := strings.Join(os.Args[3:], " ")
		for {
			c, err := l.Accept()
			if err != nil {
				continue
			}
			fmt.Fprintln(c, text)
			c.Close()
		}
	case "get":
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		io.Copy(os.Stdout, io.LimitReader(resp.Body, 4096))
	case "lookup":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(addrs, " "))
	default:
		os.Exit(2)
	}
}
