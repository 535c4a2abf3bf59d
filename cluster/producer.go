package cluster

// Idempotent producers. Each partition remembers, per producer id, the last
// sequence it wrote and its most recent batches, so a retried batch is
// acknowledged with its original offset instead of being written twice.
// This state is part of the data FSM, so it is replicated, snapshotted and
// survives restarts exactly as the log does.

const (
	// recentBatches is how many batches per producer and partition keep
	// their offsets for duplicate answers (Kafka keeps 5).
	recentBatches = 5
	// maxProducersPerPartition bounds the state; past it the producer that
	// wrote least recently is forgotten.
	maxProducersPerPartition = 10000
)

// batchSeq records where one batch of a producer landed.
type batchSeq struct {
	FirstSeq   int32 `json:"first_seq"`
	LastSeq    int32 `json:"last_seq"`
	BaseOffset int64 `json:"base_offset"`
}

// producerState is what a partition knows of one producer.
type producerState struct {
	Epoch      int16      `json:"epoch"`
	LastSeq    int32      `json:"last_seq"`
	LastOffset int64      `json:"last_offset"`
	Recent     []batchSeq `json:"recent"`
}

// seqVerdict is the outcome of checking a batch's sequence numbers.
type seqVerdict int

const (
	seqAppend seqVerdict = iota
	seqDuplicate
	seqOutOfOrder
	seqFenced
)

// Sequences are int32 values from 0 to math.MaxInt32 that wrap to 0, as
// Kafka's do (a batch may span the wrap): a long-lived producer passes
// 2^31 records per partition in hours at high rates, and a negative
// sequence means "not idempotent" in the batch layout.
const (
	seqSpace = 1 << 31
	// maxSeqBehind is how far behind the expected sequence a batch may
	// start and still be a duplicate; a batch further behind is taken to
	// be ahead (a gap). Half the space, so both sides of the wrap work.
	maxSeqBehind = seqSpace / 2
)

// seqAdd returns the sequence n after s.
func seqAdd(s, n int32) int32 { return int32((int64(s) + int64(n)) % seqSpace) }

// seqDist returns how many sequences lie from "from" up to "to", going
// forward across the wrap: 0 ≤ seqDist < 2^31.
func seqDist(from, to int32) int64 {
	d := int64(to) - int64(from)
	if d < 0 {
		d += seqSpace
	}
	return d
}

// InternalProducerBit is set in the ids of the producers the broker writes
// with itself (a queue group's dead letters, DLQProducerID). The
// ids InitProducer allocates never have it.
const InternalProducerBit int64 = 1 << 62

// IsInternalProducer reports whether pid is one of the broker's own
// producers. A client can put such an id in a batch, but it can only hurt
// its own idempotence by that.
func IsInternalProducer(pid int64) bool { return pid&InternalProducerBit != 0 }

// checkSeq decides what to do with a batch of count records starting at
// baseSeq from producer pid/epoch. For a duplicate it returns the original
// offset of the batch's first record (or -1 when no longer known); for an
// out-of-order batch, the sequence expected next; for a fenced one, the
// current epoch.
//
// Sequences belong to the producer id, not to one epoch: the first batch
// of a higher epoch (a restarted producer, see InitProducerCmd) is checked
// against the sequences the older epochs wrote, so that a resumed
// producer's replay is recognised; checkSeq then raises the state's epoch,
// which fences the older epochs from that batch on, whatever its verdict.
func checkSeq(producers map[int64]*producerState, pid int64, epoch int16, baseSeq, count int32) (seqVerdict, int64, int32) {
	st := producers[pid]
	if st == nil {
		return seqAppend, 0, 0
	}
	if epoch < st.Epoch {
		return seqFenced, 0, int32(st.Epoch)
	}
	newEpoch := epoch > st.Epoch
	st.Epoch = epoch
	next := seqAdd(st.LastSeq, 1)
	behind := seqDist(baseSeq, next)
	switch {
	case behind == 0:
		return seqAppend, 0, 0
	case newEpoch && IsInternalProducer(pid) && behind > maxSeqBehind:
		// The broker's own producers (dead letters) may start a new epoch
		// past what the older ones wrote: that is how the dead-letter
		// writer closes a gap in its numbers (numbers that went to another
		// dead-letter topic never come). A client's new epoch may not: its
		// batch ahead of the next sequence is a gap (an earlier batch of
		// its was refused and will be retried), and accepting it would make
		// that retry a "duplicate" that is never written.
		return seqAppend, 0, 0
	case behind <= maxSeqBehind && int64(count) <= behind:
		for _, r := range st.Recent {
			if off := seqDist(r.FirstSeq, baseSeq); off+int64(count) <= seqDist(r.FirstSeq, r.LastSeq)+1 {
				return seqDuplicate, r.BaseOffset + off, 0
			}
		}
		return seqDuplicate, -1, 0
	default:
		// A gap, or a batch that straddles the last written sequence.
		return seqOutOfOrder, 0, next
	}
}

// recordSeq notes a written batch. checkSeq has raised the epoch, so a
// batch of a new epoch keeps the history of the older ones.
func recordSeq(producers map[int64]*producerState, pid int64, epoch int16, baseSeq, count int32, baseOffset int64) {
	st := producers[pid]
	if st == nil {
		if len(producers) >= maxProducersPerPartition {
			evictOldestProducer(producers)
		}
		st = &producerState{Epoch: epoch}
		producers[pid] = st
	}
	st.Epoch = max(st.Epoch, epoch)
	st.LastSeq = seqAdd(baseSeq, count-1)
	st.LastOffset = baseOffset + int64(count) - 1
	st.Recent = append(st.Recent, batchSeq{FirstSeq: baseSeq, LastSeq: st.LastSeq, BaseOffset: baseOffset})
	if len(st.Recent) > recentBatches {
		st.Recent = append(st.Recent[:0], st.Recent[len(st.Recent)-recentBatches:]...)
	}
}

// evictOldestProducer forgets the producer that wrote least recently. It is
// deterministic (by offset, then id), so every replica forgets the same one.
func evictOldestProducer(producers map[int64]*producerState) {
	var victim int64
	first := true
	var oldest int64
	for id, st := range producers {
		if first || st.LastOffset < oldest || (st.LastOffset == oldest && id < victim) {
			victim, oldest, first = id, st.LastOffset, false
		}
	}
	delete(producers, victim)
}

func cloneProducers(m map[int64]*producerState) map[int64]*producerState {
	out := make(map[int64]*producerState, len(m))
	for id, st := range m {
		c := *st
		c.Recent = append([]batchSeq(nil), st.Recent...)
		out[id] = &c
	}
	return out
}
