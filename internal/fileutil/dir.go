package fileutil

import (
	"errors"
	"os"
)

// SyncDir fsyncs the directory at path, making the creations, renames and
// removals of files in it durable.
func SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
