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

// checkSeq decides what to do with a batch of count records starting at
// baseSeq from producer pid/epoch. For a duplicate it returns the original
// offset of the batch's first record (or -1 when no longer known); for an
// out-of-order batch, the sequence expected next.
func checkSeq(producers map[int64]*producerState, pid int64, epoch int16, baseSeq, count int32) (seqVerdict, int64, int32) {
	st := producers[pid]
	if st == nil || epoch > st.Epoch {
		return seqAppend, 0, 0
	}
	if epoch < st.Epoch {
		return seqFenced, 0, 0
	}
	lastSeq := baseSeq + count - 1
	switch {
	case baseSeq == st.LastSeq+1:
		return seqAppend, 0, 0
	case lastSeq <= st.LastSeq:
		for _, r := range st.Recent {
			if baseSeq >= r.FirstSeq && lastSeq <= r.LastSeq {
				return seqDuplicate, r.BaseOffset + int64(baseSeq-r.FirstSeq), 0
			}
		}
		return seqDuplicate, -1, 0
	default:
		return seqOutOfOrder, 0, st.LastSeq + 1
	}
}

// recordSeq notes a written batch.
func recordSeq(producers map[int64]*producerState, pid int64, epoch int16, baseSeq, count int32, baseOffset int64) {
	st := producers[pid]
	if st == nil || epoch != st.Epoch {
		if st == nil && len(producers) >= maxProducersPerPartition {
			evictOldestProducer(producers)
		}
		st = &producerState{Epoch: epoch}
		producers[pid] = st
	}
	st.LastSeq = baseSeq + count - 1
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
