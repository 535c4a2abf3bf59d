package broker

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/topic"
)

// A source partition's dead letters are numbered 0, 1, 2, … in raft (in
// the order they are marked), and written in that order, each number once,
// as one idempotent producer. A dead-letter partition can still see a gap
// in the numbers: the group's dead-letter topic was another one for a
// while (the numbers in between went there), a version before this one
// skipped numbers, or the partition lost its tail. The numbers of a gap
// never come, and a partition accepts only the next number of an epoch,
// so the writer closes a gap by starting a new producer epoch, which the
// partition starts at any number (and which fences the earlier epoch).
// The writer never writes without idempotence: a write that a crash
// interrupts is recognised as a duplicate when it is repeated.
//
// The epoch a partition is at is not replicated anywhere the writer can
// read, so each node caches the epoch it last saw accepted and, when the
// partition fences it (another node closed a gap), tries the next ones:
// it climbs one at a time, so it never passes the partition's epoch, and
// only a gap makes it write an epoch above the partition's. Should a new
// epoch not reset the partition's sequence (the gap stays), the writer
// stops there rather than write without idempotence: the dead letters wait
// (logged each round) until the group's dead-letter topic is changed to one
// that does not know the producer.

// maxEpochSteps bounds the epochs one write tries; the next round goes on
// from the cached one.
const maxEpochSteps = 16

// dlqProducer names one dead-letter producer on one dead-letter partition.
type dlqProducer struct {
	topicID   uint64
	partition int32
	id        int64
}

// dlqEpochState is what a node caches of a dlqProducer.
type dlqEpochState struct {
	epoch int16
	// gapAt is a sequence number whose gap a new epoch did not close
	// (valid when stuck).
	gapAt int32
	stuck bool
}

func (m *queueManager) dlqEpoch(k dlqProducer) dlqEpochState {
	if v, ok := m.dlqEpochs.Load(k); ok {
		return v.(dlqEpochState)
	}
	return dlqEpochState{}
}

// produceDeadLetters writes recs, whose sequence numbers start at seq, to
// partition dp of the dead-letter topic dt as producer pid, and returns
// how many of them, from the first, the partition now holds (written now
// or before).
func (b *Broker) produceDeadLetters(ctx context.Context, pid int64, dt topic.Topic, dp int32, recs []record.Record, seq int32) (int, error) {
	key := dlqProducer{topicID: dt.ID, partition: dp, id: pid}
	st := b.queue.dlqEpoch(key)
	defer func() { b.queue.dlqEpochs.Store(key, st) }()
	bumped := false
	for range maxEpochSteps {
		batch, err := record.AppendBatch(nil, recs, record.BatchOptions{ProducerID: pid, ProducerEpoch: st.epoch, BaseSequence: seq})
		if err != nil {
			return 0, err
		}
		_, err = b.produceOnLeader(ctx, dt.Name, dp, batch)
		var se *topic.SequenceError
		switch {
		case err == nil: // written, or a duplicate of an earlier write
			st.stuck = false
			return len(recs), nil
		case errors.As(err, &se) && se.Expected > seq:
			// An earlier leader wrote the first of these: they are done,
			// the rest go on the next round.
			return min(int(se.Expected-seq), len(recs)), nil
		case errors.As(err, &se):
			// A gap: the partition is at this epoch and expects a number
			// that never comes.
			if bumped || (st.stuck && st.gapAt == seq) || st.epoch == math.MaxInt16 {
				st.stuck, st.gapAt = true, seq
				return 0, fmt.Errorf("%w: %s/%d expects dead-letter sequence %d of producer %d, the next is %d, and a new epoch does not close the gap: not writing without idempotence",
					ErrNotReady, dt.Name, dp, se.Expected, pid, seq)
			}
			b.log.Info("queue: dead-letter sequence gap; starting a new producer epoch",
				"topic", dt.Name, "partition", dp, "producer", pid, "expected", se.Expected, "seq", seq, "epoch", st.epoch+1)
			st.epoch++
			bumped = true
		case errors.Is(err, topic.ErrProducerFenced) && st.epoch < math.MaxInt16:
			st.epoch++ // the partition is at a later epoch: climb to it
		default:
			return 0, err
		}
	}
	return 0, fmt.Errorf("%w: %s/%d: producer %d: epoch not found yet, at %d", ErrNotReady, dt.Name, dp, pid, st.epoch)
}
