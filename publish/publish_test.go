package publish

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu     sync.Mutex
	events []Event
	delay  time.Duration
	fail   bool
}

func (r *recorder) Name() string { return "rec" }
func (r *recorder) Publish(ctx context.Context, ev Event) error {
	time.Sleep(r.delay)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	if r.fail {
		return errors.New("nope")
	}
	return nil
}

func TestDispatcherOrderOnceNeverZero(t *testing.T) {
	slow, fast := &recorder{delay: 20 * time.Millisecond}, &recorder{}
	d := NewDispatcher(slog.New(slog.DiscardHandler), nil, slow, fast)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	d.Send(Event{Ports: []uint16{0}, Reason: "port"}) // dropped: port 0
	d.Send(Event{Ports: []uint16{1000}, Reason: "port"})
	d.Send(Event{Ports: []uint16{0, 2000}, Reason: "port"})
	d.Send(Event{Reason: "lost"})
	d.Send(Event{Ports: []uint16{3000}, Reason: "reconnect"})
	d.Flush(5 * time.Second)
	want := []Event{{Ports: []uint16{1000}, Reason: "port"}, {Ports: []uint16{2000}, Reason: "port"}, {Reason: "lost"}, {Ports: []uint16{3000}, Reason: "reconnect"}}
	for _, r := range []*recorder{slow, fast} {
		r.mu.Lock()
		got := r.events
		r.mu.Unlock()
		if len(got) != len(want) {
			t.Fatalf("got %v", got)
		}
		for i := range want {
			if !reflect.DeepEqual(got[i].Ports, want[i].Ports) && len(got[i].Ports)+len(want[i].Ports) > 0 || got[i].Reason != want[i].Reason {
				t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	res := d.Results()
	if len(res) != 2 || !res[0].OK || res[0].Count != 4 {
		t.Errorf("results %+v", res)
	}
}

func TestFileLikeGluetunsAndEmptied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "port")
	f := &File{Path: path}
	if err := f.Publish(context.Background(), Event{Ports: []uint16{51413, 51414}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "51413\n51414" { // gluetun's format: no newline after the last
		t.Errorf("file %q", b)
	}
	f.Publish(context.Background(), Event{Reason: "lost"})
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 0 {
		t.Errorf("lost port: file %q %v (want it empty, not deleted)", b, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("files beside it: %v", ents)
	}
}

func TestExec(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	ev := Event{Ports: []uint16{4242, 4343}, Reason: "port"}
	// No shell: metacharacters reach the program as they are.
	e := Exec{Command: `sh -c 'echo "$0 $1 $VPNFWD_PORT" > ` + out + `' {{port}} "{{ports}};rm -rf x"`}
	if err := e.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "4242 4242,4343;rm -rf x 4242\n" {
		t.Errorf("hook wrote %q", b)
	}
	if err := (Exec{Command: "echo {{port}} > " + out, Shell: true}).Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "4242\n" {
		t.Errorf("shell hook wrote %q", b)
	}
	// Lost: never run (never port 0).
	os.Remove(out)
	(Exec{Command: "touch " + out}).Publish(context.Background(), Event{Reason: "lost"})
	if _, err := os.Stat(out); err == nil {
		t.Error("hook ran without a port")
	}
	// gluetun's down command: with the ports given up, when the port is
	// lost and, before the new port's command, when it changes; and
	// {{VPN_INTERFACE}} in both.
	log := filepath.Join(dir, "log")
	hooks := Exec{Command: `sh -c 'echo "up {{PORT}} {{PORTS}} {{VPN_INTERFACE}} $VPNFWD_REASON" >> ` + log + `'`,
		Down: `sh -c 'echo "down {{PORT}} {{PORTS}} {{VPN_INTERFACE}} $VPNFWD_REASON" >> ` + log + `'`, Interface: "tun0"}
	for _, ev := range []Event{
		{Ports: []uint16{4242, 4343}, Reason: "port"},
		{Ports: []uint16{5000}, Reason: "port", Released: []uint16{4242, 4343}},
		{Reason: "lost", Released: []uint16{5000}},
		{Reason: "lost"}, // nothing held: nothing to say
	} {
		if err := hooks.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	want := "up 4242 4242,4343 tun0 port\ndown 4242 4242,4343 tun0 lost\nup 5000 5000 tun0 port\ndown 5000 5000 tun0 lost\n"
	if b, _ := os.ReadFile(log); string(b) != want {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", b, want)
	}
	// A down command alone never runs for a new port.
	os.Remove(out)
	lost := Exec{Down: "touch " + out}
	lost.Publish(context.Background(), ev)
	if _, err := os.Stat(out); err == nil {
		t.Error("the lost-port hook ran for a new port")
	}
	err := (Exec{Command: "sh -c 'echo oops >&2; exit 3'"}).Publish(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "oops") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failure error %v", err)
	}
	start := time.Now()
	err = (Exec{Command: "sleep 10", Timeout: 100 * time.Millisecond}).Publish(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 3*time.Second {
		t.Errorf("timeout: %v after %s", err, time.Since(start))
	}
	if err := (Exec{Command: "/nonexistent/hook"}).Publish(context.Background(), ev); err == nil {
		t.Error("missing program not reported")
	}
}

func TestSplitWords(t *testing.T) {
	tests := map[string][]string{
		`a b  c`:            {"a", "b", "c"},
		`a "b c" 'd e'`:     {"a", "b c", "d e"},
		`a\ b "x\"y" ''`:    {"a b", `x"y`, ""},
		`curl -d '{"p":1}'`: {"curl", "-d", `{"p":1}`},
	}
	for in, want := range tests {
		got, err := SplitWords(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := SplitWords(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A hook that prints without end is bounded: its output is cut, vpnfwd's
// memory is not spent, and the timeout still ends it.
func TestHookOutputBounded(t *testing.T) {
	e := Exec{Command: "sh -c 'yes vpnfwd; exit 1'", Timeout: 2 * time.Second}
	err := e.Publish(context.Background(), Event{Ports: []uint16{4242}, Reason: "port"})
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("error %.400v (want a short one)", err)
	}
}
