package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// File name suffixes. A segment is the three files <base>.log, <base>.index
// and <base>.timeindex, base being its base offset in 20 decimal digits.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	deletedSuffix   = ".deleted" // <base>.log.deleted: a segment being deleted
	baseDigits      = 20
)

// segmentStem returns the path of the segment files without suffix.
func segmentStem(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", base))
}

// parseBase parses a 20-digit base offset strictly.
func parseBase(s string) (int64, bool) {
	if len(s) != baseDigits {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// dirListing is what Open finds in a log directory.
type dirListing struct {
	bases   []int64 // segments with a .log, ascending
	orphans []int64 // index files without a .log
	deleted []int64 // segments whose deletion was interrupted
}

// listDir parses every name in dir strictly: anything that is not a segment
// file (or a segment file marked .deleted) is ErrUnknownFile.
func listDir(dir string) (dirListing, error) {
	var out dirListing
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out, err
	}
	logs := map[int64]bool{}
	idx := map[int64]bool{}
	for _, e := range entries {
		name := e.Name()
		stem, suffix, _ := strings.Cut(name, ".")
		base, ok := parseBase(stem)
		if !ok || !e.Type().IsRegular() {
			return out, fmt.Errorf("%w: %s", ErrUnknownFile, filepath.Join(dir, name))
		}
		switch "." + suffix {
		case logSuffix:
			logs[base] = true
		case indexSuffix, timeIndexSuffix:
			idx[base] = true
		case logSuffix + deletedSuffix:
			out.deleted = append(out.deleted, base)
		default:
			return out, fmt.Errorf("%w: %s", ErrUnknownFile, filepath.Join(dir, name))
		}
	}
	for _, b := range out.deleted {
		if logs[b] {
			return out, fmt.Errorf("%w: %s.log and .log.deleted both exist", ErrCorrupt, segmentStem(dir, b))
		}
		delete(idx, b)
	}
	for b := range logs {
		out.bases = append(out.bases, b)
	}
	for b := range idx {
		if !logs[b] {
			out.orphans = append(out.orphans, b)
		}
	}
	sort.Slice(out.bases, func(i, j int) bool { return out.bases[i] < out.bases[j] })
	return out, nil
}

// removeSegmentFiles deletes the files of the segment at stem: the .log is
// first renamed to .log.deleted, so that a crash halfway leaves a name Open
// recognises and finishes deleting, never index files without their log.
func removeSegmentFiles(stem string) error {
	if err := os.Rename(stem+logSuffix, stem+logSuffix+deletedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return finishRemove(stem)
}

func finishRemove(stem string) error {
	var errs []error
	for _, s := range []string{indexSuffix, timeIndexSuffix, logSuffix + deletedSuffix} {
		if err := os.Remove(stem + s); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lockDir opens dir and takes an exclusive flock on it, so that two Logs
// never share a directory. The returned file is also used to fsync dir.
func lockDir(dir string) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return d, nil
}
