package publish

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpnfwd/vpnfwd/session"
)

type recorder struct {
	mu     sync.Mutex
	events []session.Event
	delay  time.Duration
	fail   bool
}

func (r *recorder) Name() string { return "rec" }
func (r *recorder) Publish(ctx context.Context, ev session.Event) error {
	time.Sleep(r.delay)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	if r.fail {
		return errors.New("nope")
	}
	return nil
}

func TestPublishersOrderOnceNeverZero(t *testing.T) {
	slow, fast := &recorder{delay: 20 * time.Millisecond}, &recorder{}
	d := newHarness(nil, slow, fast)
	defer d.Stop()
	d.Send(portEv("port", 0)) // dropped: port 0
	d.Send(portEv("port", 1000))
	d.Send(portEv("port", 0, 2000))
	d.Send(portEv("lost"))
	d.Send(portEv("reconnect", 3000))
	d.Flush(5 * time.Second)
	want := []session.Event{portEv("port", 1000), portEv("port", 2000), portEv("lost"), portEv("reconnect", 3000)}
	for _, r := range []*recorder{slow, fast} {
		r.mu.Lock()
		got := r.events
		r.mu.Unlock()
		if len(got) != len(want) {
			t.Fatalf("got %v", got)
		}
		for i := range want {
			if !reflect.DeepEqual(got[i].Ports(), want[i].Ports()) && len(got[i].Ports())+len(want[i].Ports()) > 0 || got[i].Kind != want[i].Kind {
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
	if err := f.Publish(context.Background(), portEv("port", 51413, 51414)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "51413\n51414" { // gluetun's format: no newline after the last
		t.Errorf("file %q", b)
	}
	f.Publish(context.Background(), portEv("lost"))
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
	ev := portEv("port", 4242, 4343)
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
	(Exec{Command: "touch " + out}).Publish(context.Background(), portEv("lost"))
	if _, err := os.Stat(out); err == nil {
		t.Error("hook ran without a port")
	}
	// gluetun's down command: with the ports given up, when the port is
	// lost and, before the new port's command, when it changes; and
	// {{VPN_INTERFACE}} in both.
	log := filepath.Join(dir, "log")
	hooks := Exec{Command: `sh -c 'echo "up {{PORT}} {{PORTS}} {{VPN_INTERFACE}} $VPNFWD_REASON" >> ` + log + `'`,
		Down: `sh -c 'echo "down {{PORT}} {{PORTS}} {{VPN_INTERFACE}} $VPNFWD_REASON" >> ` + log + `'`, Interface: "tun0"}
	for _, ev := range []session.Event{
		portEv("port", 4242, 4343),
		released(portEv("port", 5000), 4242, 4343),
		released(portEv("lost"), 5000),
		portEv("lost"), // nothing held: nothing to say
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

// A hook that prints without end is bounded: its output is cut, vpnfwd's
// memory is not spent, and the timeout still ends it.
func TestHookOutputBounded(t *testing.T) {
	e := Exec{Command: "sh -c 'yes vpnfwd; exit 1'", Timeout: 2 * time.Second}
	err := e.Publish(context.Background(), portEv("port", 4242))
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("error %.400v (want a short one)", err)
	}
}

// gate is a consumer whose first publish waits for open.
type gate struct {
	recorder
	open  chan struct{}
	first sync.Once
}

func (g *gate) Publish(ctx context.Context, ev session.Event) error {
	g.first.Do(func() { <-g.open })
	return g.recorder.Publish(ctx, ev)
}

// A consumer that falls behind misses the oldest events (the queue's
// rule), yet what it hears as given up is always what it heard last:
// never a port it was not told of, never one it was told of missing.
func TestPublisherReleasedIsWhatItHeard(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	d := newHarness(nil, g)
	defer d.Stop()
	d.Send(portEv("port", 1000))
	for p := uint16(1001); p <= 1200; p++ { // 200 changes while it is stuck
		d.Send(portEv("port", p))
	}
	d.Send(portEv("lost"))
	close(g.open)
	d.Flush(5 * time.Second)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.events) >= 200 {
		t.Fatalf("heard %d events: nothing was dropped, the test proves nothing", len(g.events))
	}
	var heard []uint16
	for i, ev := range g.events {
		if !slices.Equal(ev.Released, heard) {
			t.Fatalf("event %d (%s %v) gives up %v; it last heard %v", i, ev.Kind, ev.Ports(), ev.Released, heard)
		}
		heard = ev.Ports()
	}
	if last := g.events[len(g.events)-1]; last.Kind != session.KindLost {
		t.Errorf("the last event is %s, want lost", last.Kind)
	}
}
