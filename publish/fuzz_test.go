package publish

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// FuzzClientAnswers answers every request of the qBittorrent, Transmission
// and Deluge clients with the fuzzer's status and body (a hostile or broken
// client, or something else on its port): no panic, an error or a result.
func FuzzClientAnswers(f *testing.F) {
	f.Add(200, []byte(`{"listen_port":6881,"random_port":false,"upnp":false}`))
	f.Add(200, []byte(`{"result":"success","arguments":{"peer-port":51413,"peer-port-random-on-start":false,"port-forwarding-enabled":false}}`))
	f.Add(200, []byte(`{"result":{"listen_ports":[6881,6891],"random_port":false,"upnp":false,"natpmp":false},"error":null,"id":1}`))
	f.Add(200, []byte(`{"result":true,"error":null,"id":1}`))
	f.Add(409, []byte(`<h1>409: Conflict</h1>`))
	f.Add(403, []byte("Forbidden"))
	f.Add(200, []byte("Fails."))
	f.Add(200, []byte(`{"listen_port":"x","result":[1,2],"arguments":null}`))
	var mu sync.Mutex
	var code int
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c, b := code, body
		mu.Unlock()
		w.Header().Set("X-Transmission-Session-Id", "fuzz")
		if c < 100 || c > 999 {
			c = 200
		}
		w.WriteHeader(c)
		w.Write(b)
	}))
	defer srv.Close()
	cc := ClientConfig{URL: srv.URL, Username: "u", Password: "p", Timeout: time.Second}
	clients := []*Client{
		NewQBittorrent(cc, QBittorrentOptions{}),
		NewTransmission(ClientConfig{URL: srv.URL + "/transmission/rpc", Timeout: time.Second}),
		NewDeluge(cc),
	}
	f.Fuzz(func(t *testing.T, status int, answer []byte) {
		mu.Lock()
		code, body = status, answer
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, c := range clients {
			c.c.Current(ctx)
			c.c.Set(ctx, 50000)
		}
	})
}
