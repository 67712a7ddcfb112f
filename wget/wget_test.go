package wget

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// gluetun's qBittorrent up command (its wiki), as the shell hands it to
// wget once {{PORT}} and {{VPN_INTERFACE}} are expanded.
var gluetunUp = []string{"-O-", "--retry-connrefused", "--post-data",
	`json={"listen_port":51413,"current_network_interface":"tun0","random_port":false,"upnp":false}`}

// recorded is what the test server saw of one request.
type recorded struct {
	method, path, contentType, body, header string
}

func server(t *testing.T, status int) (*httptest.Server, func() []recorded) {
	var mu sync.Mutex
	var got []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b), r.Header.Get("X-Api-Key")})
		mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, "Ok.")
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded { mu.Lock(); defer mu.Unlock(); return append([]recorded(nil), got...) }
}

func TestMain(t *testing.T) {
	tests := []struct {
		name   string
		args   []string // the URL is appended
		status int
		code   int
		want   recorded
		stdout string
		stderr string // a substring of stderr
	}{
		{name: "gluetun's up command", args: gluetunUp, status: 200, code: ExitOK,
			want:   recorded{method: "POST", path: "/api/v2/app/setPreferences", contentType: "application/x-www-form-urlencoded", body: gluetunUp[3]},
			stdout: "Ok.", stderr: "200 OK"},
		{name: "server error is exit 8", args: gluetunUp, status: 403, code: ExitServer,
			want: recorded{method: "POST", path: "/api/v2/app/setPreferences", contentType: "application/x-www-form-urlencoded", body: gluetunUp[3]}, stderr: "ERROR 403: Forbidden."},
		{name: "quiet, bundled, header, method", args: []string{"-qO-", "--header", "X-Api-Key: k1", "--method=PUT", "--body-data=x=1"}, status: 200, code: ExitOK,
			want: recorded{method: "PUT", path: "/api/v2/app/setPreferences", contentType: "application/x-www-form-urlencoded", body: "x=1", header: "k1"}, stdout: "Ok."},
		{name: "GET with timeout and tries", args: []string{"-O", "-", "-T", "5", "-t", "2", "-S"}, status: 200, code: ExitOK,
			want: recorded{method: "GET", path: "/api/v2/app/setPreferences"}, stdout: "Ok.", stderr: "  HTTP/1.1 200 OK"},
		{name: "a header replaces the default", args: []string{"-nv", "-O-", "--header=Content-Type: application/json", "--post-data", `{"a":1}`}, status: 200, code: ExitOK,
			want: recorded{method: "POST", path: "/api/v2/app/setPreferences", contentType: "application/json", body: `{"a":1}`}, stdout: "Ok."},
		{name: "busybox-style long form", args: []string{"--output-document=-", "--quiet", "--no-check-certificate", "--post-data=a=b"}, status: 200, code: ExitOK,
			want: recorded{method: "POST", path: "/api/v2/app/setPreferences", contentType: "application/x-www-form-urlencoded", body: "a=b"}, stdout: "Ok."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := server(t, tt.status)
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append(append([]string(nil), tt.args...), srv.URL+"/api/v2/app/setPreferences"), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, stderr.String())
			}
			if g := got(); len(g) != 1 || g[0] != tt.want {
				t.Errorf("server saw %+v, want one %+v", g, tt.want)
			}
			if stdout.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q in it", stderr.String(), tt.stderr)
			}
		})
	}
}

// A refused connection ends wget at once (exit 4) unless
// --retry-connrefused, which waits for the server (qBittorrent starting
// after vpnfwd) and then posts.
func TestRetryConnRefused(t *testing.T) {
	tests := []struct {
		name  string
		retry bool
		code  int
		posts int
	}{
		{name: "refused is final", code: ExitNetwork},
		{name: "--retry-connrefused", retry: true, code: ExitOK, posts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close() // refused until the server starts
			srv, got := server(t, 200)
			srv.Close()
			done := make(chan struct{})
			defer func() { <-done }()
			go func() { // the server comes up after the first try
				defer close(done)
				time.Sleep(300 * time.Millisecond)
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				s := &http.Server{Handler: srv.Config.Handler}
				go s.Serve(l)
				t.Cleanup(func() { s.Close() })
			}()
			args := []string{"-O-", "--post-data", "a=b"}
			if tt.retry {
				args = append(args, "--retry-connrefused")
			}
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := Main(context.Background(), append(args, "http://"+addr+"/x"), &stdout, &stderr)
			if code != tt.code || len(got()) != tt.posts {
				t.Errorf("exit %d with %d posts, want %d with %d (%s)\n%s", code, len(got()), tt.code, tt.posts, time.Since(start), stderr.String())
			}
			if !strings.Contains(stderr.String(), "Connection refused") {
				t.Errorf("stderr does not say the connection was refused:\n%s", stderr.String())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--frobnicate", "http://x/"}, "unrecognized option '--frobnicate'"},
		{[]string{"-Z", "http://x/"}, "invalid option -- 'Z'"},
		{[]string{"-O"}, "option '-O' requires an argument"},
		{[]string{"--quiet=yes", "http://x/"}, "doesn't allow an argument"},
		{[]string{"-t", "many", "http://x/"}, "invalid number"},
		{[]string{"-q"}, "missing URL"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := Main(context.Background(), tt.args, io.Discard, &stderr); code != ExitParse || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

// Without -O the body goes to the URL's file name, never over an
// existing file (GNU Wget adds .1).
func TestOutputFile(t *testing.T) {
	srv, _ := server(t, 200)
	dir := t.TempDir()
	t.Chdir(dir)
	for _, want := range []string{"prefs", "prefs.1"} {
		if code := Main(context.Background(), []string{"-q", srv.URL + "/api/prefs"}, io.Discard, io.Discard); code != ExitOK {
			t.Fatalf("exit %d", code)
		}
		if b, err := os.ReadFile(filepath.Join(dir, want)); err != nil || string(b) != "Ok." {
			t.Errorf("%s: %q %v", want, b, err)
		}
	}
	if code := Main(context.Background(), []string{"-q", "-O", filepath.Join(dir, "no", "such"), srv.URL}, io.Discard, io.Discard); code != ExitFile {
		t.Errorf("an unwritable -O file: exit %d, want %d", code, ExitFile)
	}
}
