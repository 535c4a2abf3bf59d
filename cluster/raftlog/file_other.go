//go:build !linux

package raftlog

import (
	"errors"
	"os"
)

// lockFile does nothing where flock is not used.
func lockFile(*os.File) error { return nil }

// fallocate is not used here: spares are zero-filled.
func fallocate(*os.File, int64) error { return errors.ErrUnsupported }
