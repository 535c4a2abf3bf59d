package client

import (
	"fmt"
	"time"

	"github.com/stratalog/strata/api/record"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// String returns "topic/partition".
func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// Record is a record to produce.
//
// The producer keeps Key, Value and the header values until the record's
// callback has run: do not modify them before.
type Record struct {
	Topic string
	// Key decides the partition (record.KeyPartition) unless HasPartition
	// is set. A nil key means no key: the producer spreads such records
	// round-robin or sticky. An empty non-nil key is a key (as in Kafka).
	Key     []byte
	Value   []byte
	Headers []record.Header
	// Timestamp is the record's time; the zero Time means the time the
	// record is given to the producer.
	Timestamp time.Time
	// Partition is the partition to write to when HasPartition is true.
	Partition    int32
	HasPartition bool
}

// Result is where a produced record landed.
type Result struct {
	Topic     string
	Partition int32
	// Offset is the record's offset, or -1 when the record was already
	// written by an earlier attempt or an earlier run of the same producer
	// id and the broker no longer knows its offset.
	Offset int64
	// Duplicate is true when the broker recognised the record as already
	// written (an idempotent retry or a resumed producer's replay).
	Duplicate bool
}

// StartAt says where a consumer starts reading a partition that has no
// committed offset (and what Offset values Earliest and Latest mean).
type StartAt int

// Starting points.
const (
	// Earliest is the log start offset: everything still retained.
	Earliest StartAt = iota
	// Latest is the high watermark: only records written from now on.
	Latest
)

// String returns "earliest" or "latest".
func (s StartAt) String() string {
	if s == Latest {
		return "latest"
	}
	return "earliest"
}

// Offset is a position to read a partition from: an exact offset, the
// earliest or latest one, the first record at or after a time, or the
// group's committed offset. Build one with AtOffset, AtStart, AtEnd,
// AtTime or AtCommitted.
type Offset struct {
	kind   offsetKind
	offset int64
	time   time.Time
}

type offsetKind int

const (
	offsetStart offsetKind = iota
	offsetEnd
	offsetExact
	offsetTime
	offsetCommitted
)

// AtOffset is the exact offset o.
func AtOffset(o int64) Offset { return Offset{kind: offsetExact, offset: o} }

// AtStart is the partition's log start offset.
func AtStart() Offset { return Offset{kind: offsetStart} }

// AtEnd is the partition's high watermark: records written from now on.
func AtEnd() Offset { return Offset{kind: offsetEnd} }

// AtTime is the first record whose timestamp is at or after t (the high
// watermark when none is).
func AtTime(t time.Time) Offset { return Offset{kind: offsetTime, time: t} }

// AtCommitted is the consumer group's committed offset, or the consumer's
// StartAt when the group has none. It needs ConsumerConfig.Group.
func AtCommitted() Offset { return Offset{kind: offsetCommitted} }

// String describes the position.
func (o Offset) String() string {
	switch o.kind {
	case offsetStart:
		return "start"
	case offsetEnd:
		return "end"
	case offsetExact:
		return fmt.Sprintf("offset %d", o.offset)
	case offsetTime:
		return "time " + o.time.Format(time.RFC3339Nano)
	}
	return "committed"
}
