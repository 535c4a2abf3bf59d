package raftlog

import (
	"errors"
	"fmt"
	"log/slog"
)

// Sentinel errors of package raftlog. Compare with errors.Is; most are
// wrapped with context.
var (
	// ErrClosed is returned by every method of a Store after Close.
	ErrClosed = errors.New("raftlog: store closed")
	// ErrInvalidConfig is returned by Config.Validate and Open for a bad Config.
	ErrInvalidConfig = errors.New("raftlog: invalid config")
	// ErrCorrupt is wrapped by every *CorruptError: stored bytes that fail
	// their checks (header, length bounds, CRC32C, index continuity).
	ErrCorrupt = errors.New("raftlog: corrupt data")
	// ErrUnknownFile is returned by Open when the directory holds a file
	// whose name is not one the store writes.
	ErrUnknownFile = errors.New("raftlog: unknown file in log directory")
	// ErrLocked is returned by Open when another Store holds the directory.
	ErrLocked = errors.New("raftlog: log directory in use")
	// ErrEntryTooLarge is returned by StoreLogs for an entry whose encoding
	// is larger than Config.MaxEntryBytes.
	ErrEntryTooLarge = errors.New("raftlog: entry too large")
	// ErrInvalidEntry is returned by StoreLogs for an entry whose log type
	// has the top bit set (raft's types never do; the store uses the bit).
	ErrInvalidEntry = errors.New("raftlog: invalid entry")
	// ErrNonContiguous is returned by StoreLogs for entries that do not
	// follow the last stored index (the store is a MonotonicLogStore), and
	// by DeleteRange for a range that is neither a head nor a tail.
	ErrNonContiguous = errors.New("raftlog: entries not contiguous")
	// ErrFailed is returned by every write after a write or fsync failed:
	// what reached the disk is then unknown until the store is reopened.
	ErrFailed = errors.New("raftlog: store failed; reopen it")
)

// CorruptError reports corrupt stored data: the file, the byte position in
// it and what was wrong. It matches ErrCorrupt with errors.Is.
type CorruptError struct {
	File   string
	Pos    int64
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: %s at byte %d: %s", ErrCorrupt, e.File, e.Pos, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Limits of the configuration.
const (
	// MinSegmentBytes is the smallest Config.SegmentBytes.
	MinSegmentBytes = 4 << 10
	// MaxSegmentBytes is the largest Config.SegmentBytes: positions in a
	// segment are kept as uint32.
	MaxSegmentBytes = 1<<32 - 1
)

// Config configures a Store.
type Config struct {
	// SegmentBytes is the size of a segment file in bytes: a segment is
	// preallocated to it, and the next entry that does not fit starts a new
	// segment. MinSegmentBytes to MaxSegmentBytes, at least MaxEntryBytes
	// plus the segment header and an entry frame. Default 64 MiB.
	SegmentBytes int64
	// MaxEntryBytes bounds the encoded size of one entry in bytes (its
	// fields, data and extensions: see doc.go). StoreLogs refuses larger
	// entries and a larger length on disk is corruption. Default 16 MiB.
	MaxEntryBytes int
	// NoSync turns off every fsync, and preallocation with it. Tests only:
	// acknowledged writes can be lost on a crash. Default false.
	NoSync bool
	// Logger receives recovery and maintenance messages. Nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 64 MiB segments, entries up to 16 MiB,
// fsync on every StoreLogs.
func DefaultConfig() Config {
	return Config{SegmentBytes: 64 << 20, MaxEntryBytes: 16 << 20}
}

// Validate reports whether c can open a Store; the error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.SegmentBytes < MinSegmentBytes || c.SegmentBytes > MaxSegmentBytes {
		errs = append(errs, fmt.Errorf("SegmentBytes %d not in [%d, %d]", c.SegmentBytes, MinSegmentBytes, int64(MaxSegmentBytes)))
	}
	if c.MaxEntryBytes < payloadFixed {
		errs = append(errs, fmt.Errorf("MaxEntryBytes %d below %d", c.MaxEntryBytes, payloadFixed))
	} else if int64(c.MaxEntryBytes)+frameHeader+segHeaderSize > c.SegmentBytes {
		errs = append(errs, fmt.Errorf("MaxEntryBytes %d does not fit a segment of %d bytes", c.MaxEntryBytes, c.SegmentBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
