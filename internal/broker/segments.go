package broker

import (
	"log/slog"
	"time"

	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// SegmentConfigs returns how the partitions of a topic are stored on disk,
// for cluster.NodeConfig.Segment: segments of maxSegmentBytes with an
// index preallocated to fit them, the topic's retention and largest batch,
// and no fsync of their own: raft's log is the write-ahead log, and the
// data FSM makes the segment logs durable at its snapshots. logger gets
// the logs' recovery reports.
func SegmentConfigs(maxSegmentBytes int64, logger *slog.Logger) func(topic.Config) segment.Config {
	return func(tc topic.Config) segment.Config {
		sc := segment.DefaultConfig()
		sc.MaxSegmentBytes = maxSegmentBytes
		sc.MaxIndexBytes = sc.FittedIndexBytes() // preallocated per partition
		sc.MaxBatchBytes = max(sc.MaxBatchBytes, int(tc.MaxBatchBytes))
		sc.RetentionAge = time.Duration(tc.RetentionMs) * time.Millisecond
		sc.RetentionBytes = tc.RetentionBytes
		sc.Fsync = segment.FsyncNever // raft's log is the write-ahead log
		sc.Logger = logger
		return sc
	}
}
