package netns

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A confined CMD (root-run exec without --user) is root of a user
// namespace of its own, mapped outside to an id of its own: not nobody
// (65534), whose processes on the host CMD could then signal, trace or
// read, and not an id any process on the host runs as. The ids come from
// vpnfwd's range, 0x70000000 to 0x7000FFFF (1879048192-1879113727): above
// the ranges Debian gives users (1000-59999) and subordinate ids (from
// 100000, 65536 each), and above systemd's dynamic (61184-65519) and
// container (524288-1878982656) ranges. The same number is the gid.
const (
	confinedBase = 0x70000000
	confinedSize = 0x10000
)

// confinedID is the id for a CMD started by the agent with pid seed:
// the first id of the range from seed's place in it that no process
// uses (inUse).
func confinedID(seed int, inUse map[uint32]bool) uint32 {
	for i := range confinedSize {
		id := uint32(confinedBase + (seed+i)%confinedSize)
		if !inUse[id] {
			return id
		}
	}
	return uint32(confinedBase + seed%confinedSize) // all 65,536 in use: cannot happen
}

// idsInUse are the uids and gids the host's processes run as (real,
// effective, saved and filesystem ids, from /proc/PID/status).
func idsInUse() map[uint32]bool {
	ids := map[uint32]bool{}
	statuses, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, path := range statuses {
		f, err := os.Open(path)
		if err != nil {
			continue // gone meanwhile
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "Uid:") && !strings.HasPrefix(line, "Gid:") {
				continue
			}
			for _, field := range strings.Fields(line)[1:] {
				if id, err := strconv.ParseUint(field, 10, 32); err == nil {
					ids[uint32(id)] = true
				}
			}
		}
		f.Close()
	}
	return ids
}
