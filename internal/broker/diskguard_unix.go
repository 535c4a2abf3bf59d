//go:build unix

package broker

import (
	"fmt"
	"math"
	"syscall"
)

// statfsFree returns the bytes of dir's file system that an unprivileged
// process may still use (root's reserve is not counted on).
func statfsFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(min(uint64(st.Bavail)*uint64(st.Bsize), math.MaxInt64)), nil
}
