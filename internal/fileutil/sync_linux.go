//go:build linux

package fileutil

import (
	"errors"
	"os"
	"syscall"
)

// Fdatasync flushes the data of f and the metadata needed to read it back,
// retrying when a signal interrupts the call. An error is an
// *os.PathError naming f.
func Fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
