package testnet_test

import (
	"context"
	"io"
	"net/netip"
	"testing"

	"github.com/vpnfwd/vpnfwd/internal/testnet"
)

// BenchmarkTunnelTCP measures bulk TCP through a wireguard-go pair over
// two gVisor stacks in one process (loopback UDP between them): upload is
// client to server, as when a seeding service sends to a peer.
func BenchmarkTunnelTCP(b *testing.B) {
	for _, dir := range []string{"upload", "download"} {
		b.Run(dir, func(b *testing.B) {
			srv, err := testnet.Start(testnet.Options{NATPMP: "off"})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			c, err := srv.Connect()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			l, err := srv.Stack.ListenTCP(netip.AddrPortFrom(testnet.GatewayAddr, 9000))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			chunk := make([]byte, 64<<10)
			total := int64(b.N) * int64(len(chunk))
			go func() {
				s, err := l.Accept()
				if err != nil {
					return
				}
				defer s.Close()
				if dir == "upload" {
					io.Copy(io.Discard, s)
				} else {
					io.CopyN(s, zeros{}, total)
				}
			}()
			conn, err := c.Stack.DialContext(context.Background(), "tcp", "10.2.0.1:9000")
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			if dir == "upload" {
				for i := 0; i < b.N; i++ {
					if _, err := conn.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				conn.(interface{ CloseWrite() error }).CloseWrite()
			} else if _, err := io.CopyN(io.Discard, conn, total); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			conn.Close()
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
