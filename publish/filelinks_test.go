package publish

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The port file's directory may be another user's: a symlink that user
// planted, or a hard link to another file, must not make vpnfwd (maybe
// root) truncate, write or chown what it leads to (found in review: a
// root-only file emptied and handed over). vpnfwd's own or root's
// symlink is followed.
func TestPortFileLinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("secret"), 0o600)
	ev := portEv("port", 40001)

	hard := filepath.Join(dir, "hard")
	if err := os.Link(victim, hard); err != nil {
		t.Fatal(err)
	}
	if err := (&File{Path: hard}).Publish(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "2 names") {
		t.Errorf("a hard link: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "secret" {
		t.Errorf("the hard link's other file became %q", b)
	}

	own := filepath.Join(dir, "own")
	os.Symlink(filepath.Join(dir, "real"), own)
	if err := (&File{Path: own}).Publish(context.Background(), ev); err != nil {
		t.Errorf("vpnfwd's own symlink: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "real")); string(b) != "40001" {
		t.Errorf("through vpnfwd's own symlink: %q", b)
	}

	if os.Geteuid() != 0 {
		t.Skip("a symlink made by another user needs root to make")
	}
	theirs := filepath.Join(dir, "theirs")
	os.Symlink(victim, theirs)
	if out, err := exec.Command("chown", "-h", "1000:1000", theirs).CombinedOutput(); err != nil {
		t.Fatalf("chown -h: %v %s", err, out)
	}
	if err := (&File{Path: theirs, Owner: &Owner{UID: 1000, GID: 1000}}).Publish(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "symlink made by uid 1000") {
		t.Errorf("another user's symlink: %v", err)
	}
	fi, _ := os.Stat(victim)
	if b, _ := os.ReadFile(victim); string(b) != "secret" || fi.Mode().Perm() != 0o600 {
		t.Errorf("the symlink's target became %q, mode %v", b, fi.Mode())
	}
}
