package publish

import (
	"context"
	"strconv"
	"strings"

	"github.com/vpnfwd/vpnfwd/internal/atomicfile"
)

// File writes the ports to a file, one per line, atomically (temporary file
// and rename). When the port is lost the file is emptied, not deleted, so
// watchers keep watching the same path.
type File struct{ Path string }

// Name implements Consumer.
func (f File) Name() string { return "file:" + f.Path }

// Publish implements Consumer.
func (f File) Publish(_ context.Context, ev Event) error {
	var b strings.Builder
	for _, p := range ev.Ports {
		b.WriteString(strconv.Itoa(int(p)))
		b.WriteByte('\n')
	}
	return atomicfile.Write(f.Path, []byte(b.String()), 0o644)
}
