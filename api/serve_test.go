package api

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// limitBody drops a request whose body trickles, and leaves alone a
// request without a body that streams longer than the limit (an event
// stream).
func TestLimitBody(t *testing.T) {
	const limit = 200 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			if _, err := io.ReadAll(r.Body); err != nil {
				http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
				return
			}
			io.WriteString(w, "read")
			return
		}
		for range 6 { // 600 ms of events
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			io.WriteString(w, "e")
			http.NewResponseController(w).Flush()
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: limitBody(h, limit)}
	go srv.Serve(l)
	defer srv.Close()
	tests := []struct {
		name, req string
		trickle   bool // then send the rest of the body a byte per 100 ms
		want      string
	}{
		{"a body in time", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok", false, "read"},
		{"a trickled body", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\na", true, "body: "},
		{"a stream without a body outlives the limit", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, "eeeeee"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.req)
			if tt.trickle {
				go func() {
					for range 9 {
						time.Sleep(100 * time.Millisecond) // the trickle itself
						if _, err := c.Write([]byte("b")); err != nil {
							return
						}
					}
				}()
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(string(b), tt.want) {
				t.Errorf("answered %d %q, want %q", resp.StatusCode, b, tt.want)
			}
		})
	}
}
