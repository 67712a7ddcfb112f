package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// kernelFS are the file systems that are the kernel's view of itself,
// not storage: a state directory there is never kept (and a write may
// change a setting).
var kernelFS = map[int64]string{
	unix.PROC_SUPER_MAGIC: "proc", unix.SYSFS_MAGIC: "sysfs", unix.CGROUP_SUPER_MAGIC: "cgroup",
	unix.CGROUP2_SUPER_MAGIC: "cgroup2", unix.DEBUGFS_MAGIC: "debugfs", unix.TRACEFS_MAGIC: "tracefs",
	unix.SECURITYFS_MAGIC: "securityfs", unix.DEVPTS_SUPER_MAGIC: "devpts", unix.BPF_FS_MAGIC: "bpf",
	unix.PSTOREFS_MAGIC: "pstore", unix.EFIVARFS_MAGIC: "efivarfs",
}

// checkStateDir says what is wrong with d as vpnfwd's state directory
// ("" when nothing): not a directory, on a kernel file system, or in a
// place vpnfwd cannot write. A directory not made yet is judged by the
// nearest one above it that exists.
func checkStateDir(d string) string {
	const why = "vpnfwd keeps the last port and provider tokens there; give a directory of its own, e.g. /var/lib/vpnfwd"
	at := filepath.Clean(d)
	for {
		fi, err := os.Stat(at)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Sprintf("%s: %s is not a directory (%s)", d, at, why)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
			return fmt.Sprintf("%s: %v (%s)", d, err, why)
		}
		up := filepath.Dir(at)
		if up == at {
			return ""
		}
		at = up
	}
	var st unix.Statfs_t
	if err := unix.Statfs(at, &st); err == nil {
		if name, ok := kernelFS[int64(st.Type)]; ok {
			return fmt.Sprintf("%s: %s is on %s, the kernel's own file system, not storage (%s)", d, at, name, why)
		}
	}
	if err := unix.Access(at, unix.W_OK); err != nil {
		return fmt.Sprintf("%s: vpnfwd cannot write in %s: %v (%s)", d, at, err, why)
	}
	return ""
}

// validTableName applies nft's rule for names as a user types them
// (nft list table inet NAME): a letter or '_' first, then letters,
// digits and _-. (at most 64 characters).
func validTableName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i, r := range n {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_'
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '-' || r == '.')) {
			return false
		}
	}
	return true
}
