package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vpnfwd/vpnfwd/config"
	"github.com/vpnfwd/vpnfwd/provider/all"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md's generated reference")

const (
	refBegin = "<!-- options:begin: made by `vpnfwd options --markdown`; go test ./cmd/vpnfwd -run TestConfigurationReference -update rewrites it -->\n"
	refEnd   = "<!-- options:end -->\n"
)

// docs/configuration.md's reference is the option table's own
// (`vpnfwd options --markdown`): this fails when it is stale.
func TestConfigurationReference(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "configuration.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, refBegin), strings.Index(doc, refEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no %q ... %q block", path, refBegin, refEnd)
	}
	want := config.Markdown(all.Providers)
	got := doc[i+len(refBegin) : j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i+len(refBegin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is stale: run go test ./cmd/vpnfwd -run TestConfigurationReference -update", path)
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile("(?m)^#{1,6} (.+)$")
	codeSpan  = regexp.MustCompile("`([^`]+)`")
	fence     = regexp.MustCompile("(?ms)^```.*?^```")
)

// slug is GitHub's anchor for a heading: lower case, punctuation but
// hyphens dropped, spaces to hyphens.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(t *testing.T, path string) map[string]bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range mdHeading.FindAllStringSubmatch(fence.ReplaceAllString(string(b), ""), -1) {
		s := slug(m[1])
		for n := 1; out[s]; n++ { // GitHub numbers repeated headings
			s = slug(m[1]) + "-" + strconv.Itoa(n)
		}
		out[s] = true
	}
	return out
}

// Every relative link in the README and docs/ goes to a file that exists
// and, with a #fragment, to a heading in it.
func TestDocLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"))
	headings := map[string]map[string]bool{} // a file's anchors, read once
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := fence.ReplaceAllString(string(b), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			dest := f
			if file != "" {
				dest = filepath.Join(filepath.Dir(f), file)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link to %s: no such file", f, target)
					continue
				}
			}
			if frag == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			if headings[dest] == nil {
				headings[dest] = anchors(t, dest)
			}
			if !headings[dest][frag] {
				t.Errorf("%s: link to %s: no such heading in %s", f, target, dest)
			}
		}
	}
}

// docs/architecture.md's package table names every package of the module,
// and nothing that is not one.
func TestArchitectureNamesEveryPackage(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.Contains(cells[1], "`") {
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[1]+" "+cells[2], -1) {
			named[m[1]] = true
		}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[1], -1) {
			if fi, err := os.Stat(filepath.Join(root, m[1])); err != nil || !fi.IsDir() {
				t.Errorf("architecture.md names %q, which is no package directory", m[1])
			}
		}
	}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == "examples" || rel == "bench") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if pkg := filepath.ToSlash(filepath.Dir(rel)); !named[pkg] && !named[filepath.Base(pkg)] {
			t.Errorf("package %s is not in docs/architecture.md's table", pkg)
			named[pkg] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The walk of a port event in docs/architecture.md names files that
// exist, and each function it names in a file is in that file.
func TestArchitectureWalkFilesExist(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, walk, ok := strings.Cut(string(b), "## The walk of a port event")
	if !ok {
		t.Fatal("architecture.md has no walk of a port event")
	}
	// `dir/file.go` (`Func`) or `dir/file.go` (`Type.Method`, ...)
	ref := regexp.MustCompile("`([a-z0-9/]+\\.go)`(?: \\(`([A-Za-z.]+)`)?")
	n := 0
	for _, m := range ref.FindAllStringSubmatch(walk, -1) {
		n++
		src, err := os.ReadFile(filepath.Join(root, m[1]))
		if err != nil {
			t.Errorf("the walk names %s: %v", m[1], err)
			continue
		}
		if fn := m[2]; fn != "" {
			name := fn[strings.LastIndex(fn, ".")+1:]
			if !regexp.MustCompile(`(?m)^func (\([^)]*\) )?` + name + `\b`).Match(src) {
				t.Errorf("the walk says %s has %s; it does not", m[1], fn)
			}
		}
	}
	if n < 10 {
		t.Errorf("the walk names %d files; it should show the path with file names", n)
	}
}

// The house's rules on imports, as docs/architecture.md states them: the
// API renders and imports neither the publishers nor the daemon, and
// what the config and the API need stays free of the tunnel's engines
// (wireguard-go, gVisor) so the Kubernetes example's validator and other
// readers of the config build without them.
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	const mod = "github.com/vpnfwd/vpnfwd/"
	for pkg, banned := range map[string][]string{
		mod + "api":    {mod + "publish", mod + "daemon", "golang.zx2c4.com/wireguard", "gvisor.dev/gvisor"},
		mod + "config": {mod + "daemon", "golang.zx2c4.com/wireguard", "gvisor.dev/gvisor"},
		mod + "status": {mod},
	} {
		for _, d := range deps(pkg) {
			for _, b := range banned {
				if d != pkg && strings.HasPrefix(d, b) {
					t.Errorf("%s imports %s", pkg, d)
				}
			}
		}
	}
}
