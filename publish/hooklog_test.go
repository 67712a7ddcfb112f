package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A hook's output is logged: at debug level when it succeeds, at warn
// level (with the error) when it fails, cut at 4 KiB.
func TestHookOutputLogged(t *testing.T) {
	tests := []struct {
		name    string
		command string
		fails   bool
		level   string
		msg     string
		want    string // the output logged
	}{
		{name: "success", command: `sh -c 'echo "set port {{PORT}}"'`, level: "DEBUG", msg: "hook output", want: "set port 4242\n"},
		{name: "failure", command: `sh -c 'echo "Fails." >&2; exit 8'`, fails: true, level: "WARN", msg: "hook failed", want: "Fails.\n"},
		{name: "quiet success", command: "true"},
		{name: "capped", command: `sh -c 'yes 0123456789 | head -c 100000; exit 1'`, fails: true, level: "WARN", msg: "hook failed", want: strings.Repeat("0123456789\n", 372) + "0123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			err := Exec{Command: tt.command, Log: log}.Publish(context.Background(), portEv("port", 4242))
			if (err != nil) != tt.fails {
				t.Fatalf("err %v, want failure %v", err, tt.fails)
			}
			if tt.level == "" {
				if buf.Len() != 0 {
					t.Errorf("logged %q for a hook that printed nothing", buf.String())
				}
				return
			}
			var rec struct{ Level, Msg, Hook, Output string }
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("%v: %.300s", err, buf.String())
			}
			if rec.Level != tt.level || rec.Msg != tt.msg || rec.Hook != "sh" || rec.Output != tt.want {
				t.Errorf("logged %s %q hook %q output %.100q (%d bytes), want %s %q hook sh output %.100q (%d bytes)",
					rec.Level, rec.Msg, rec.Hook, rec.Output, len(rec.Output), tt.level, tt.msg, tt.want, len(tt.want))
			}
		})
	}
}

// The down command gets gluetun's 60 s, the up command 30 s, unless set.
func TestHookTimeouts(t *testing.T) {
	tests := []struct {
		e        Exec
		up, down time.Duration
	}{
		{Exec{}, 30 * time.Second, 60 * time.Second},
		{Exec{Timeout: 5 * time.Second}, 5 * time.Second, 60 * time.Second},
		{Exec{DownTimeout: 90 * time.Second}, 30 * time.Second, 90 * time.Second},
	}
	for _, tt := range tests {
		if up, down := tt.e.timeout(false), tt.e.timeout(true); up != tt.up || down != tt.down {
			t.Errorf("%+v: up %s down %s, want %s %s", tt.e, up, down, tt.up, tt.down)
		}
	}
}

// A hook that could never run is found before the first port: its
// program is named.
func TestCheckHook(t *testing.T) {
	script := filepath.Join(t.TempDir(), "hook")
	tests := []struct {
		command string
		shell   bool
		want    string // "" for no error
	}{
		{`/bin/sh -c 'wget -O- --retry-connrefused --post-data "json={\"listen_port\":{{PORT}}}" http://127.0.0.1:8080/api/v2/app/setPreferences 2>&1'`, false, ""},
		{"echo {{PORT}} > /tmp/port", true, ""},
		{"sh -c 'true'", false, ""},
		{"{{PORT}}-hook", false, ""},
		{"/no/such/hook {{PORT}}", false, "program /no/such/hook not found as an executable file"},
		{"no-such-hook-program {{PORT}}", false, "program no-such-hook-program not found in PATH"},
		{script + " x", false, "program " + script + " not found"},
		{"'unterminated", false, "unterminated quote"},
		{"", false, "empty command"},
	}
	for _, tt := range tests {
		err := CheckHook(tt.command, tt.shell)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckHook(%q, %v) = %v, want %q", tt.command, tt.shell, err, tt.want)
		}
	}
}
