package cluster

import (
	"bytes"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

func TestQueueCmdRoundTrip(t *testing.T) {
	for _, c := range []QueueCmd{
		{Op: QueueInit, Key: PartKey{TopicID: 7, Partition: 3}, Group: "g", Gen: 1, Arg: 42, Offsets: []int64{}},
		{Op: QueueDeliver, Key: PartKey{TopicID: 1}, Group: "workers", Gen: 9, Flags: QueueFlagNoCount, Offsets: []int64{5, 3, 1000000, 6}},
		{Op: QueueNack, Group: "g", Gen: 2, Text: "boom", Offsets: []int64{1, 2}, Times: []int64{1700000000000, -1}},
		{Op: QueueDeadMark, Group: "g", Reason: ReasonRejected, Offsets: []int64{9}},
	} {
		got, err := DecodeQueueCmd(c.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if c.Times != nil {
			c.Flags |= QueueFlagTimes
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
		}
	}
	b := (&QueueCmd{Op: QueueAck, Group: "g", Offsets: []int64{1, 2, 3}}).Encode()
	for i := 0; i < len(b); i++ {
		if _, err := DecodeQueueCmd(b[:i]); err == nil {
			t.Fatalf("a command cut at %d of %d bytes decoded", i, len(b))
		}
	}
}

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

// The queue state is deterministic and survives a snapshot and restore
// exactly (the leader's scratch does not travel).
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
	cmd := func(op QueueOp, offs ...int64) []byte {
		c := QueueCmd{Op: op, Key: k, Group: "g", Gen: 1, Offsets: offs}
		if op == QueueNack {
			c.Times, c.Text = make([]int64, len(offs)), "err"
		}
		if op == QueueDeadMark {
			c.Reason = ReasonRejected
		}
		return c.Encode()
	}
	apply((&QueueCmd{Op: QueueInit, Key: k, Group: "g", Gen: 1}).Encode())
	apply(cmd(QueueDeliver, 0, 1, 2, 3, 4, 5))
	apply(cmd(QueueAck, 0, 1, 3))
	apply(cmd(QueueNack, 2))
	apply(cmd(QueueDeliver, 2))
	apply(cmd(QueueDeadMark, 4))
	if err, ok := apply((&QueueCmd{Op: QueueAck, Key: k, Group: "g", Gen: 5, Offsets: []int64{2}}).Encode()).(error); !ok {
		t.Fatalf("a command of another generation applied: %v", err)
	}
	q := f.Partition(k).Queue("g")
	want := q.Stats(time.Now())
	if want.Floor != 2 || want.Next != 6 || want.Acked != 3 || want.DeadPending != 1 || want.Redelivered != 1 {
		t.Fatalf("state %+v", want)
	}
	pend := q.PendingDeadLetters()
	if len(pend) != 1 || pend[0].Offset != 4 || pend[0].Seq != 0 || pend[0].Reason != ReasonRejected {
		t.Fatalf("pending dead letters %+v", pend)
	}
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
	if got := q2.Stats(time.Now()); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restore %+v, want %+v", got, want)
	}
	if got := q2.PendingDeadLetters(); !reflect.DeepEqual(got, pend) {
		t.Fatalf("pending after restore %+v, want %+v", got, pend)
	}
}
