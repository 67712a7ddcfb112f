package testnet_test

import (
	"context"
	"io"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/demo"
)

// BenchmarkTunnelTCP measures bulk TCP through a wireguard-go pair over
// two gVisor stacks in one process (loopback UDP between them): upload is
// client to server, as when a seeding service sends to a peer.
func BenchmarkTunnelTCP(b *testing.B) {
	for _, dir := range []string{"upload", "download"} {
		b.Run(dir, func(b *testing.B) {
			srv, err := demo.Start(demo.Options{NATPMP: "off"})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			c, err := srv.Connect()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			l, err := srv.Stack.ListenTCP(netip.AddrPortFrom(demo.GatewayAddr, 9000))
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
			cpu0 := cpuTime()
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
			// Process CPU per GB moved (both ends of the tunnel are in
			// this process): steadier than MB/s on a shared machine.
			b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(total)/1e9), "cpu-s/GB")
			conn.Close()
		})
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
