package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

func applyMeta(t *testing.T, f *MetaFSM, cmd []byte) any {
	t.Helper()
	return f.Apply(&raft.Log{Type: raft.LogCommand, Data: cmd})
}

type metaSnapSink struct{ bytes.Buffer }

func (s *metaSnapSink) ID() string    { return "mem" }
func (s *metaSnapSink) Cancel() error { return nil }
func (s *metaSnapSink) Close() error  { return nil }

// TestMetaInitProducer: a new id starts at epoch 0, a restart of an id
// raises its epoch (kept in snapshots), a spent id is replaced by a new
// one, and ids that were never allocated or that write a queue group's
// dead letters are refused.
func TestMetaInitProducer(t *testing.T) {
	f := NewMetaFSM(nil)
	if got := applyMeta(t, f, AllocProducerIDCmd()); got != (ProducerInit{ID: 1}) {
		t.Fatalf("new id: %+v", got)
	}
	for want := int16(1); want <= 2; want++ {
		if got := applyMeta(t, f, InitProducerCmd(1)); got != (ProducerInit{ID: 1, Epoch: want}) {
			t.Fatalf("restart: %+v, want epoch %d", got, want)
		}
	}
	if f.ProducerEpoch(1) != 2 || f.ProducerEpoch(2) != 0 {
		t.Fatalf("epochs %d, %d; want 2, 0", f.ProducerEpoch(1), f.ProducerEpoch(2))
	}
	// An older node does not know producer_id and allocates an id for
	// every one of these commands: a restart consumes an id too, so that
	// both keep the same NextProducerID.
	var next int64
	f.Read(func(s *MetaState) { next = s.NextProducerID })
	if next != 4 {
		t.Fatalf("next producer id %d after 3 commands, want 4", next)
	}
	var old struct{ Op string }
	if err := json.Unmarshal(InitProducerCmd(1), &old); err != nil || old.Op != opAllocProducerID {
		t.Fatalf("restart command is %q (%v), want an %s an older node knows", old.Op, err, opAllocProducerID)
	}

	// Snapshot and restore keep the epochs, and what the produce path reads.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink metaSnapSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := NewMetaFSM(nil)
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if g.ProducerEpoch(1) != 2 {
		t.Fatalf("restored epoch %d, want 2", g.ProducerEpoch(1))
	}

	// At the last epoch the producer gets a new id instead.
	g.mu.Lock()
	g.state.ProducerEpochs = map[int64]int16{1: math.MaxInt16}
	g.mu.Unlock()
	if got := applyMeta(t, g, InitProducerCmd(1)); got != (ProducerInit{ID: 4}) {
		t.Fatalf("restart at epoch MaxInt16: %+v, want the new id 4 at epoch 0", got)
	}

	// Refused ids.
	applyMeta(t, g, CreateTopicCmd(topic.Topic{Name: "q", Partitions: make([]topic.Assignment, 2)}))
	d, ok := applyMeta(t, g, PutQueueCmd(queue.Def{Name: "w", Topic: "q"})).(queue.Def)
	if !ok {
		t.Fatal("queue group not created")
	}
	for _, id := range []int64{d.ProducerIDBase, d.ProducerIDBase + 1, 1000} {
		if err, _ := applyMeta(t, g, InitProducerCmd(id)).(error); !errors.Is(err, topic.ErrUnknownProducer) {
			t.Errorf("restart of id %d: %v, want ErrUnknownProducer", id, err)
		}
		if err := g.CheckProducerID(id); !errors.Is(err, topic.ErrUnknownProducer) {
			t.Errorf("check of id %d: %v, want ErrUnknownProducer", id, err)
		}
	}
}
