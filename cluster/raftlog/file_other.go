//go:build !linux

package raftlog

import (
	"errors"
	"os"
)

// fdatasync flushes f; without fdatasync, with a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }

// lockFile does nothing where flock is not used.
func lockFile(*os.File) error { return nil }

// fallocate is not used here: spares are zero-filled.
func fallocate(*os.File, int64) error { return errors.ErrUnsupported }
