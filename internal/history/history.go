package history

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Outcome is what a client learned of a produce.
type Outcome uint8

// Outcomes of a produce.
const (
	// OK: acknowledged at an offset.
	OK Outcome = iota
	// Failed: refused; the record must not be in the log.
	Failed
	// Unknown: the client gave up without an answer; the record may be in
	// the log, once.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Produce is one record a client produced.
type Produce struct {
	Client    int
	Partition int32
	Value     string
	Call      int64 // Recorder.Now when the call began
	Return    int64 // Recorder.Now when the outcome was known
	Outcome   Outcome
	Offset    int64 // with OK
	Err       string
}

// Read is one fetch from a partition's leader.
type Read struct {
	Client     int
	Partition  int32
	From       int64
	Call       int64
	Return     int64
	OutOfRange bool
	// HighWatermark is the one the answer reported.
	HighWatermark int64
	// Values are the records returned from From on, in offset order.
	Values []string
}

// Recorder collects a history. It is safe for concurrent use.
type Recorder struct {
	start time.Time

	mu         sync.Mutex
	produces   []Produce
	reads      []Read
	deliveries []Delivery
	settles    []Settle
	streams    map[string]map[int32][]int64
}

// NewRecorder returns an empty recorder whose clock starts now.
func NewRecorder() *Recorder {
	return &Recorder{start: time.Now(), streams: map[string]map[int32][]int64{}}
}

// Now is the recorder's clock: nanoseconds since it started, monotonic.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Produce records a produce.
func (r *Recorder) Produce(p Produce) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.produces = append(r.produces, p)
}

// Read records a read.
func (r *Recorder) Read(rd Read) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = append(r.reads, rd)
}

// Streamed records that a stream consumer received the record at offset of
// partition, in the order it received them.
func (r *Recorder) Streamed(consumer string, partition int32, offset int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.streams[consumer]
	if m == nil {
		m = map[int32][]int64{}
		r.streams[consumer] = m
	}
	m[partition] = append(m[partition], offset)
}

// Produces returns the produces recorded so far.
func (r *Recorder) Produces() []Produce {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.produces)
}

// Reads returns the reads recorded so far.
func (r *Recorder) Reads() []Read {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reads)
}

// Counts summarises a history for a report.
type Counts struct {
	Acknowledged, Failed, Unknown, UnknownWritten int
	Lost, Duplicated, Unexpected                  int
	Reads, OutOfRange                             int
}

func (c Counts) String() string {
	return fmt.Sprintf("acknowledged %d (lost %d, duplicated %d, unexpected %d), failed %d, unknown %d (%d written), reads %d (%d out of range)",
		c.Acknowledged, c.Lost, c.Duplicated, c.Unexpected, c.Failed, c.Unknown, c.UnknownWritten, c.Reads, c.OutOfRange)
}

// Result is the outcome of a check: what was counted and every violation
// found (empty when the history is correct).
type Result struct {
	Counts     Counts
	Violations []string
}

// OK reports whether the check found no violation.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

func (r *Result) violate(format string, args ...any) {
	r.Violations = appendViolation(r.Violations, format, args...)
}

// appendViolation appends a violation to vs, listing at most 50.
func appendViolation(vs []string, format string, args ...any) []string {
	const maxListed = 50
	switch {
	case len(vs) < maxListed:
		return append(vs, fmt.Sprintf(format, args...))
	case len(vs) == maxListed:
		return append(vs, "… (more violations not listed)")
	}
	return vs
}
