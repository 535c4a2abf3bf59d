//go:build !linux

package segment

import "os"

// preallocate makes f at least size bytes long (sparse where fallocate(2) is
// missing).
func preallocate(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() >= size {
		return nil
	}
	return f.Truncate(size)
}
