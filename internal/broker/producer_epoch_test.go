package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/topic"
)

// TestProducerEpochFencing: restarting a producer id gives it the next
// epoch, through the metadata group, so that it survives a broker restart
// (replayed from raft's log, and restored from a snapshot); the older
// epoch is refused from then on, while the newer one's replay of what the
// older wrote is recognised (the resume rule).
func TestProducerEpochFencing(t *testing.T) {
	tn := openTestNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := tn.b.CreateTopic(ctx, "t", topic.Config{}); err != nil {
		t.Fatal(err)
	}
	pid, e0, err := tn.b.InitProducer(ctx, 0)
	if err != nil || e0 != 0 {
		t.Fatalf("new producer: epoch %d, %v; want epoch 0", e0, err)
	}
	opt := func(epoch int16, seq int32) record.BatchOptions {
		return record.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}
	}
	produce := func(epoch int16, seq int32, vals ...string) (ProduceResult, error) {
		t.Helper()
		return tn.b.Produce(ctx, "t", 0, batchOf(t, opt(epoch, seq), vals...))
	}
	if _, err := produce(0, 0, "a", "b"); err != nil {
		t.Fatal(err)
	}
	restart := func(want int16) {
		t.Helper()
		id, epoch, err := tn.b.InitProducer(ctx, pid)
		if err != nil || id != pid || epoch != want {
			t.Fatalf("restart producer %d: id %d epoch %d, %v; want id %d epoch %d", pid, id, epoch, err, pid, want)
		}
	}
	restart(1)
	if _, err := produce(0, 2, "zombie"); !errors.Is(err, topic.ErrProducerFenced) {
		t.Fatalf("epoch 0 after epoch 1 started: %v, want ErrProducerFenced", err)
	}
	if r, err := produce(1, 0, "a", "b"); err != nil || !r.Duplicate || r.BaseOffset != 0 {
		t.Fatalf("epoch 1 replays epoch 0's batch: %+v %v, want a duplicate at 0", r, err)
	}
	if r, err := produce(1, 2, "c"); err != nil || r.BaseOffset != 2 {
		t.Fatalf("epoch 1 continues: %+v %v", r, err)
	}

	tn = tn.reopen() // the metadata is replayed from raft's log
	restart(2)
	if _, err := produce(1, 3, "zombie"); !errors.Is(err, topic.ErrProducerFenced) {
		t.Fatalf("epoch 1 after a restart and epoch 2: %v, want ErrProducerFenced", err)
	}
	if r, err := produce(2, 3, "d"); err != nil || r.BaseOffset != 3 {
		t.Fatalf("epoch 2: %+v %v", r, err)
	}

	if err := tn.node.Meta.Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		t.Fatal(err)
	}
	tn = tn.reopen() // the metadata is restored from the snapshot
	restart(3)
	if _, err := produce(2, 4, "zombie"); !errors.Is(err, topic.ErrProducerFenced) {
		t.Fatalf("epoch 2 after a snapshot and epoch 3: %v, want ErrProducerFenced", err)
	}
	if r, err := produce(3, 4, "e"); err != nil || r.BaseOffset != 4 {
		t.Fatalf("epoch 3: %+v %v", r, err)
	}
	if got := values(t, tn.b, "t", 0, 0); fmt.Sprint(got) != "[a b c d e]" {
		t.Fatalf("log %v, want [a b c d e]", got)
	}
	if _, _, err := tn.b.InitProducer(ctx, pid+100); !errors.Is(err, topic.ErrUnknownProducer) {
		t.Fatalf("unknown producer: %v", err)
	}
}
