package cluster

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func newTestDataFSM(t *testing.T, dir string) *DataFSM {
	t.Helper()
	f, err := NewDataFSM(DataFSMConfig{Dir: dir, Segment: func(topic.Config) segment.Config {
		c := segment.DefaultConfig()
		c.Fsync = segment.FsyncNever
		c.MaxIndexBytes = 1 << 16
		return c
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A queue command in a data group's raft log is the data FSM's type byte
// then the queue package's encoding; these bytes were written by the code
// that kept both in cluster, and must still be what QueueCmd writes.
func TestQueueCmdEntryGolden(t *testing.T) {
	c := queue.Cmd{Op: queue.OpNack, TopicID: 1<<40 + 5, Partition: 70000, Group: "g", Gen: 2, Text: "boom",
		Offsets: []int64{1, 2}, Times: []int64{1700000000000, -1}}
	old := []byte{0x4, 0x4, 0x0, 0x0, 0x1, 0x0, 0x0, 0x0, 0x0, 0x5, 0x0, 0x1, 0x11, 0x70, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x2, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x1, 0x1, 0x67, 0x4, 0x62, 0x6f, 0x6f, 0x6d, 0x2, 0x2, 0x2, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, 0x1}
	if got := QueueCmd(&c); !bytes.Equal(got, old) {
		t.Fatalf("QueueCmd:\n got %#v\nwant %#v", got, old)
	}
}

// The data FSM applies queue commands to the partition's queue states,
// answers commands it cannot apply with the queue package's errors, and
// carries the states through a snapshot and restore exactly (a leader's
// scratch is not part of them).
func TestQueueStateSnapshot(t *testing.T) {
	dir := t.TempDir()
	f := newTestDataFSM(t, dir)
	k := PartKey{TopicID: 1, Partition: 0}
	idx := uint64(0)
	apply := func(cmd []byte) any {
		idx++
		return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: cmd})
	}
	apply(CreatePartitionCmd("t", k, topic.Config{Partitions: 1, MaxBatchBytes: 1 << 20}))
	cmd := func(op queue.Op, offs ...int64) []byte {
		c := queue.Cmd{Op: op, TopicID: k.TopicID, Partition: k.Partition, Group: "g", Gen: 1, Offsets: offs}
		if op == queue.OpNack {
			c.Times, c.Text = make([]int64, len(offs)), "err"
		}
		if op == queue.OpDeadMark {
			c.Reason = queue.ReasonRejected
		}
		return QueueCmd(&c)
	}
	if err, _ := apply(cmd(queue.OpAck, 0)).(error); !errors.Is(err, queue.ErrNotReady) {
		t.Fatalf("an ack before init: %v, want ErrNotReady", err)
	}
	apply(cmd(queue.OpInit))
	apply(cmd(queue.OpDeliver, 0, 1, 2, 3, 4, 5))
	apply(cmd(queue.OpAck, 0, 1, 3))
	apply(cmd(queue.OpNack, 2))
	apply(cmd(queue.OpDeliver, 2))
	apply(cmd(queue.OpDeadMark, 4))
	stale := queue.Cmd{Op: queue.OpAck, TopicID: k.TopicID, Group: "g", Gen: 5, Offsets: []int64{2}}
	if err, _ := apply(QueueCmd(&stale)).(error); !errors.Is(err, queue.ErrReset) {
		t.Fatalf("a command of another generation: %v, want ErrReset", err)
	}
	other := queue.Cmd{Op: queue.OpAck, TopicID: 9, Group: "g", Gen: 1, Offsets: []int64{2}}
	if err, _ := apply(QueueCmd(&other)).(error); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("a command for a partition not here: %v, want ErrUnknownPartition", err)
	}
	q := f.Partition(k).Queue("g")
	want := q.Stats(time.Now(), nil)
	if want.Floor != 2 || want.Next != 6 || want.Acked != 3 || want.DeadPending != 1 || want.Redelivered != 1 {
		t.Fatalf("state %+v", want)
	}
	wantSnap := q.Snapshot()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f2 := newTestDataFSM(t, dir)
	if err := f2.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	q2 := f2.Partition(k).Queue("g")
	if got := q2.Stats(time.Now(), nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restore %+v, want %+v", got, want)
	}
	if got := q2.Snapshot(); !reflect.DeepEqual(got, wantSnap) {
		t.Fatalf("after restore %+v, want %+v", got, wantSnap)
	}
}
