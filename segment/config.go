package segment

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// FsyncPolicy says when appended bytes are made durable, and so when they
// become visible to readers (see Log.HighWatermark).
type FsyncPolicy int

const (
	// FsyncAlways (the default) returns from Append only after the batch is
	// fsynced; concurrent Appends share one fsync (group commit). Readers
	// never see a batch before it is durable.
	FsyncAlways FsyncPolicy = iota
	// FsyncInterval fsyncs in a background goroutine every
	// Config.FsyncInterval; a batch is visible as soon as it is written.
	FsyncInterval
	// FsyncNever leaves fsync to the caller (Log.Sync), for logs fed by raft,
	// whose own log is the write-ahead log. A batch is visible once written.
	FsyncNever
)

// String implements fmt.Stringer.
func (p FsyncPolicy) String() string {
	switch p {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("FsyncPolicy(%d)", int(p))
}

// Config configures a Log. Start from DefaultConfig: zero sizes are invalid.
type Config struct {
	// MaxSegmentBytes rolls the active segment when a batch would take it
	// past this size in bytes. A single larger batch gets a segment of its
	// own. At most 4 GiB-1 (index positions are uint32). Default 512 MiB.
	MaxSegmentBytes int64
	// MaxSegmentAge rolls a non-empty active segment whose first batch was
	// appended longer ago than this. 0 never rolls by age. Default 7 days.
	MaxSegmentAge time.Duration
	// IndexIntervalBytes is the number of log bytes between two entries of
	// the sparse indexes. Default 4096.
	IndexIntervalBytes int
	// MaxIndexBytes is the preallocated size in bytes of each index file of
	// the active segment; a full index rolls the segment. Default 10 MiB.
	MaxIndexBytes int
	// MaxBatchBytes is the largest batch, in bytes, that Append accepts and
	// that recovery and reads believe: a larger length on disk is corruption.
	// Default 8 MiB.
	MaxBatchBytes int
	// RetentionAge makes EnforceRetention delete sealed segments whose newest
	// record is older than this. 0 keeps segments forever.
	RetentionAge time.Duration
	// RetentionBytes makes EnforceRetention delete the oldest sealed segments
	// while the log is larger than this many bytes. 0 means no limit.
	RetentionBytes int64
	// Fsync is the durability policy. Default FsyncAlways.
	Fsync FsyncPolicy
	// FsyncInterval is the period of the background fsync under
	// FsyncInterval. Default 100ms.
	FsyncInterval time.Duration
	// DurableOffset is an offset below which the caller knows every batch
	// was durable: fsynced at a checkpoint it recorded (a raft FSM's
	// snapshot). Open then treats a fault in the active segment below it
	// as corruption (a *CorruptError; nothing is cut), not as a torn tail.
	// Only Open reads it. 0, the default: nothing is known.
	DurableOffset int64
	// Logger receives recovery reports (dropped tails, rebuilt indexes) and
	// background errors. nil discards them.
	Logger *slog.Logger
	// Now is the clock for age rolls and retention. nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the default Config: 512 MiB segments rolled after 7
// days, 4 KiB index interval, 10 MiB indexes, 8 MiB batches, no retention,
// FsyncAlways.
func DefaultConfig() Config {
	return Config{
		MaxSegmentBytes:    512 << 20,
		MaxSegmentAge:      7 * 24 * time.Hour,
		IndexIntervalBytes: 4096,
		MaxIndexBytes:      10 << 20,
		MaxBatchBytes:      8 << 20,
		Fsync:              FsyncAlways,
		FsyncInterval:      100 * time.Millisecond,
	}
}

// Validate reports the first invalid field, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.MaxSegmentBytes < minSegmentBytes || c.MaxSegmentBytes > math.MaxUint32:
		return bad("MaxSegmentBytes %d not in [%d, %d]", c.MaxSegmentBytes, minSegmentBytes, int64(math.MaxUint32))
	case c.MaxSegmentAge < 0:
		return bad("MaxSegmentAge %v < 0", c.MaxSegmentAge)
	case c.IndexIntervalBytes < 1:
		return bad("IndexIntervalBytes %d < 1", c.IndexIntervalBytes)
	case c.MaxIndexBytes < minIndexBytes || c.MaxIndexBytes > math.MaxInt32:
		return bad("MaxIndexBytes %d not in [%d, %d]", c.MaxIndexBytes, minIndexBytes, math.MaxInt32)
	case c.MaxBatchBytes < BatchHeaderSize || c.MaxBatchBytes > maxBatchLimit:
		return bad("MaxBatchBytes %d not in [%d, %d]", c.MaxBatchBytes, BatchHeaderSize, maxBatchLimit)
	case c.RetentionAge < 0:
		return bad("RetentionAge %v < 0", c.RetentionAge)
	case c.RetentionBytes < 0:
		return bad("RetentionBytes %d < 0", c.RetentionBytes)
	case c.DurableOffset < 0:
		return bad("DurableOffset %d < 0", c.DurableOffset)
	case c.Fsync < FsyncAlways || c.Fsync > FsyncNever:
		return bad("unknown Fsync policy %d", int(c.Fsync))
	case c.Fsync == FsyncInterval && c.FsyncInterval <= 0:
		return bad("FsyncInterval %v must be > 0 under FsyncInterval", c.FsyncInterval)
	}
	return nil
}

// FittedIndexBytes returns the smallest MaxIndexBytes (rounded up to 4 KiB)
// whose indexes hold every entry a segment of MaxSegmentBytes can get: one
// per IndexIntervalBytes of log. The default 10 MiB is about seven times
// what a 512 MiB segment needs, and each index of an active segment is
// preallocated on disk (fallocate: real blocks, see mapIndex), so a node
// with many partitions pays it per partition: 20 MiB per partition for its
// two indexes, 60 GB for 1,000 partitions with 3 replicas.
func (c Config) FittedIndexBytes() int {
	entries := c.MaxSegmentBytes/int64(max(c.IndexIntervalBytes, 1)) + 1
	n := (entries*timeEntrySize + 4095) &^ 4095
	return int(max(n, minIndexBytes))
}

const (
	minSegmentBytes = 1024
	minIndexBytes   = 4 * timeEntrySize
	maxBatchLimit   = 1 << 30
)
