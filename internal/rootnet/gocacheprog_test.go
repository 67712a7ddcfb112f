package rootnet

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The test binary is also a GOCACHEPROG (cmd/go's external cache
// protocol) when VPNFWD_GOCACHEPROG_OUT is set: it answers from the
// directory VPNFWD_GOCACHEPROG_FROM (this machine's GOCACHE) and copies
// every entry the build uses, and every entry it makes, into OUT, in
// GOCACHE's own layout. OUT is then a build cache holding just what one
// build needs, small enough to put in a builder image (Docker's classic
// builder has no cache mounts).
func init() {
	if out := os.Getenv("VPNFWD_GOCACHEPROG_OUT"); out != "" {
		os.Exit(goCacheProg(os.Stdin, os.Stdout, os.Getenv("VPNFWD_GOCACHEPROG_FROM"), out))
	}
}

// cacheRequest and cacheResponse are cmd/go/internal/cacheprog's
// Request and Response.
type cacheRequest struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
}

type cacheResponse struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

func goCacheProg(in io.Reader, out io.Writer, from, to string) int {
	dec := json.NewDecoder(bufio.NewReader(in))
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	send := func(r cacheResponse) { enc.Encode(r); w.Flush() }
	send(cacheResponse{KnownCommands: []string{"get", "put", "close"}})
	for {
		var req cacheRequest
		if err := dec.Decode(&req); err != nil {
			return 0
		}
		resp := cacheResponse{ID: req.ID}
		switch req.Command {
		case "get":
			e, err := cacheGet(to, req.ActionID)
			if err != nil && from != "" {
				if e, err = cacheGet(from, req.ActionID); err == nil {
					e, err = cachePutFile(to, req.ActionID, e)
				}
			}
			if err != nil {
				resp.Miss = true
				break
			}
			resp.OutputID, resp.Size, resp.Time, resp.DiskPath = e.output, e.size, &e.time, e.path
		case "put":
			var body []byte
			if req.BodySize > 0 {
				if err := dec.Decode(&body); err != nil {
					resp.Err = err.Error()
					break
				}
			}
			e, err := cachePut(to, req.ActionID, req.OutputID, body)
			if err != nil {
				resp.Err = err.Error()
				break
			}
			if from != "" {
				cachePut(from, req.ActionID, req.OutputID, body) // the next run finds it there
			}
			resp.DiskPath = e.path
		case "close":
			send(resp)
			return 0
		default:
			resp.Err = "unknown command " + req.Command
		}
		send(resp)
	}
}

// cacheEntry is one action's output in a GOCACHE directory.
type cacheEntry struct {
	output []byte
	size   int64
	time   time.Time
	path   string // the output file
}

func cacheFile(dir string, id []byte, suffix string) string {
	h := hex.EncodeToString(id)
	return filepath.Join(dir, h[:2], h+suffix)
}

// cacheGet reads an action's index entry ("v1 ACTION OUTPUT SIZE TIME").
func cacheGet(dir string, action []byte) (cacheEntry, error) {
	b, err := os.ReadFile(cacheFile(dir, action, "-a"))
	if err != nil {
		return cacheEntry{}, err
	}
	f := strings.Fields(string(b))
	if len(f) != 5 || f[0] != "v1" || f[1] != hex.EncodeToString(action) {
		return cacheEntry{}, fmt.Errorf("bad entry %q", b)
	}
	var e cacheEntry
	if e.output, err = hex.DecodeString(f[2]); err != nil {
		return e, err
	}
	e.size, _ = strconv.ParseInt(f[3], 10, 64)
	nanos, _ := strconv.ParseInt(f[4], 10, 64)
	e.time = time.Unix(0, nanos)
	e.path = cacheFile(dir, e.output, "-d")
	if st, err := os.Stat(e.path); err != nil || st.Size() != e.size {
		return e, fmt.Errorf("output %s missing or not %d bytes", e.path, e.size)
	}
	return e, nil
}

// cachePutFile copies an entry found elsewhere into dir.
func cachePutFile(dir string, action []byte, e cacheEntry) (cacheEntry, error) {
	body, err := os.ReadFile(e.path)
	if err != nil {
		return e, err
	}
	return cachePut(dir, action, e.output, body)
}

// cachePut writes an output and its index entry, each through a
// temporary file (another go command may read the directory).
func cachePut(dir string, action, output, body []byte) (cacheEntry, error) {
	e := cacheEntry{output: output, size: int64(len(body)), time: time.Now(), path: cacheFile(dir, output, "-d")}
	index := fmt.Sprintf("v1 %x %x %20d %20d\n", action, output, len(body), e.time.UnixNano())
	for _, f := range []struct {
		path string
		data []byte
	}{{e.path, body}, {cacheFile(dir, action, "-a"), []byte(index)}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o777); err != nil {
			return e, err
		}
		tmp := fmt.Sprintf("%s.%d.tmp", f.path, os.Getpid())
		if err := os.WriteFile(tmp, f.data, 0o666); err != nil {
			return e, err
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return e, err
		}
	}
	return e, nil
}
