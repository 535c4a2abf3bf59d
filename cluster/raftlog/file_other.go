//go:build !linux

package raftlog

import "os"

// fdatasync flushes f; without fdatasync, with a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }

// lockFile does nothing where flock is not used.
func lockFile(*os.File) error { return nil }
