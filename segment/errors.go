package segment

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is; most are wrapped with context.
var (
	// ErrClosed is returned by every method of a Log after Close, and by Wait
	// when the Log is closed while it waits.
	ErrClosed = errors.New("segment: log closed")
	// ErrInvalidConfig is returned by Config.Validate and Open for a bad Config.
	ErrInvalidConfig = errors.New("segment: invalid config")
	// ErrInvalidBatch is returned for a batch that is not a well-formed Kafka
	// v2 RecordBatch (short, wrong length field, magic, CRC, offsets, count).
	ErrInvalidBatch = errors.New("segment: invalid batch")
	// ErrBatchTooLarge is returned for a batch larger than Config.MaxBatchBytes.
	ErrBatchTooLarge = errors.New("segment: batch too large")
	// ErrOffsetOutOfRange is returned for an offset below the log start offset
	// or above the high watermark.
	ErrOffsetOutOfRange = errors.New("segment: offset out of range")
	// ErrNotBatchBoundary is returned by Truncate for an offset that is neither
	// the base offset of a batch nor the high watermark.
	ErrNotBatchBoundary = errors.New("segment: offset is not a batch boundary")
	// ErrCorrupt is wrapped by every *CorruptError: stored bytes that fail
	// their checks (length bounds, magic, CRC32C, offset continuity).
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrUnknownFile is returned by Open when the directory holds a file whose
	// name is not one the log writes.
	ErrUnknownFile = errors.New("segment: unknown file in log directory")
	// ErrLocked is returned by Open when another Log holds the directory.
	ErrLocked = errors.New("segment: log directory in use")
	// ErrTruncated is returned by an Append, under FsyncAlways, whose batch
	// was removed by a Truncate before it was fsynced and acknowledged.
	ErrTruncated = errors.New("segment: append truncated before commit")
)

// CorruptError reports corrupt stored data: the file, the byte position in it
// and what was wrong. It matches ErrCorrupt with errors.Is.
type CorruptError struct {
	Path   string // file holding the corrupt bytes
	Pos    int64  // byte position of the corrupt batch or entry in Path
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: %s at byte %d: %s", ErrCorrupt, e.Path, e.Pos, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corruptf(path string, pos int64, format string, args ...any) error {
	return &CorruptError{Path: path, Pos: pos, Reason: fmt.Sprintf(format, args...)}
}
