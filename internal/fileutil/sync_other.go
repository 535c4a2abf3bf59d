//go:build !linux

package fileutil

import "os"

// Fdatasync flushes f; where fdatasync(2) is missing it is a full fsync.
func Fdatasync(f *os.File) error { return f.Sync() }
