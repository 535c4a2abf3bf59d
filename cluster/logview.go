package cluster

import (
	"context"

	"github.com/stratalog/strata/segment"
)

// LogView is a partition's segment log as everything but the data FSM sees
// it: its bounds, its size, reads and waits for new records. Only the FSM
// writes the log (appends, truncations, resets, in the order raft's log
// dictates); retention, which deletes whole sealed segments on each
// replica, goes through Partition.EnforceRetention.
type LogView struct{ l *segment.Log }

// StartOffset is the first readable offset.
func (v LogView) StartOffset() int64 { return v.l.StartOffset() }

// HighWatermark is the offset the next record will get.
func (v LogView) HighWatermark() int64 { return v.l.HighWatermark() }

// Size is the size of the log's segment files in bytes.
func (v LogView) Size() int64 { return v.l.Size() }

// Read returns stored batches from the one holding offset, up to maxBytes
// (at least one batch); see segment.Log.Read.
func (v LogView) Read(offset int64, maxBytes int) ([]byte, error) { return v.l.Read(offset, maxBytes) }

// ReadAppend is Read into dst's spare capacity; see segment.Log.ReadAppend.
func (v LogView) ReadAppend(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	return v.l.ReadAppend(dst, offset, maxBytes)
}

// OffsetForTime returns the offset of the first batch whose newest record
// is at or after ts (unix ms); see segment.Log.OffsetForTime.
func (v LogView) OffsetForTime(ts int64) (int64, error) { return v.l.OffsetForTime(ts) }

// Wait returns once the high watermark passes offset, or ctx ends; see
// segment.Log.Wait.
func (v LogView) Wait(ctx context.Context, offset int64) error { return v.l.Wait(ctx, offset) }

// Segments describes the log's segments; see segment.Log.Segments.
func (v LogView) Segments() []segment.SegmentInfo { return v.l.Segments() }

// Dir is the log's directory.
func (v LogView) Dir() string { return v.l.Dir() }

// EnforceRetention deletes the partition's sealed segments that its
// retention has expired, on this replica, and returns how many. Snapshots
// keep hard links to the segments they reference, so it never takes away
// what a snapshot in progress still needs.
func (p *Partition) EnforceRetention() (int, error) { return p.log().EnforceRetention() }

// log is the partition's segment log, for the FSM to write.
func (p *Partition) log() *segment.Log { return p.Log.l }
