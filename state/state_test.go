package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadCorrupt(t *testing.T) {
	var warned []string
	d := Dir{Path: filepath.Join(t.TempDir(), "sub"), Warn: func(m string, _ ...any) { warned = append(warned, m) }}
	type lease struct{ Port int }
	var got lease
	if err := d.Load("lease", &got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := d.Save("lease", lease{51413}); err != nil {
		t.Fatal(err)
	}
	if err := d.Load("lease", &got); err != nil || got.Port != 51413 {
		t.Fatalf("%v %+v", err, got)
	}
	fi, _ := os.Stat(filepath.Join(d.Path, "lease.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	os.WriteFile(filepath.Join(d.Path, "lease.json"), []byte("{not json"), 0o600)
	if err := d.Load("lease", &got); !errors.Is(err, ErrNotFound) || len(warned) != 1 || !strings.Contains(warned[0], "corrupt") {
		t.Errorf("corrupt: %v %v", err, warned)
	}
	if (Dir{}).Save("x", 1) != nil || (Dir{}).Load("x", &got) == nil {
		t.Error("empty Dir should remember nothing")
	}
}
