package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// testNode is a real single-node cluster (raft groups on bolt, segment
// logs) in a temporary directory, with a broker over it.
type testNode struct {
	t    *testing.T
	dir  string
	node *cluster.Node
	b    *Broker
}

func openTestNode(t *testing.T, dir string) *testNode {
	t.Helper()
	tn := &testNode{t: t, dir: dir}
	var b *Broker
	rc := cluster.DefaultGroupConfig()
	rc.SnapshotThreshold = 1 << 20 // tests take snapshots explicitly
	node, err := cluster.OpenNode(context.Background(), cluster.NodeConfig{
		ID: "n1", Dir: dir, ClusterAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", DataGroups: 2,
		Segment: func(tc topic.Config) segment.Config {
			c := segment.DefaultConfig()
			c.MaxSegmentBytes = 1 << 20
			c.MaxIndexBytes = 1 << 16
			c.Fsync = segment.FsyncNever
			c.RetentionAge = time.Duration(tc.RetentionMs) * time.Millisecond
			c.RetentionBytes = tc.RetentionBytes
			return c
		},
		Raft: rc,
	}, func() {
		if b != nil {
			b.NotifyMetadataChanged()
		}
	})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	cfg := DefaultConfig()
	b, err = New(cfg, node)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tn.node, tn.b = node, b
	t.Cleanup(tn.close)
	return tn
}

func (tn *testNode) close() {
	if tn.b == nil {
		return
	}
	if err := tn.b.Close(); err != nil {
		tn.t.Errorf("close broker: %v", err)
	}
	if err := tn.node.Close(); err != nil {
		tn.t.Errorf("close node: %v", err)
	}
	tn.b, tn.node = nil, nil
}

func (tn *testNode) reopen() *testNode {
	tn.close()
	return openTestNode(tn.t, tn.dir)
}

func batchOf(t *testing.T, opt record.BatchOptions, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Value: []byte(v), Timestamp: time.Now()}
	}
	b, err := record.AppendBatch(nil, recs, opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var plain = record.BatchOptions{ProducerID: -1, BaseSequence: -1}

func values(t *testing.T, b *Broker, topic string, p int32, from int64) []string {
	t.Helper()
	var out []string
	for {
		res, err := b.Fetch(context.Background(), topic, p, from, 1<<20, 0)
		if err != nil {
			t.Fatalf("fetch %s/%d at %d: %v", topic, p, from, err)
		}
		if len(res.Records) == 0 {
			return out
		}
		err = record.DecodeBatches(res.Records, func(r record.Record) bool {
			if r.Offset >= from {
				out = append(out, string(r.Value))
				from = r.Offset + 1
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestProduceFetchRestart(t *testing.T) {
	tn := openTestNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := tn.b.CreateTopic(ctx, "orders", topic.Config{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		v := fmt.Sprintf("r%d", i)
		res, err := tn.b.Produce(ctx, "orders", 1, batchOf(t, plain, v))
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseOffset != int64(i) {
			t.Fatalf("offset %d, want %d", res.BaseOffset, i)
		}
		want = append(want, v)
		if i == 9 {
			// A checkpoint in the middle: the restart restores the snapshot
			// and replays the entries after it.
			for _, dg := range tn.node.DataGroups() {
				if err := dg.Group.Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
					t.Fatalf("snapshot: %v", err)
				}
			}
		}
	}
	if err := tn.b.CommitOffsets(ctx, "g", "", 0, []topic.PartitionOffset{{Topic: "orders", Partition: 1, Offset: 7}}); err != nil {
		t.Fatal(err)
	}
	tn = tn.reopen()
	got := values(t, tn.b, "orders", 1, 0)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after restart: %v, want %v", got, want)
	}
	if off := tn.b.FetchOffsets("g", []TopicPartition{{"orders", 1}})[0].Offset; off != 7 {
		t.Fatalf("committed offset after restart %d, want 7", off)
	}
	res, err := tn.b.Produce(ctx, "orders", 1, batchOf(t, plain, "after"))
	if err != nil || res.BaseOffset != 20 {
		t.Fatalf("produce after restart: %+v %v, want offset 20", res, err)
	}
}

func TestBadInputLeavesLogUnchanged(t *testing.T) {
	tn := openTestNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := tn.b.CreateTopic(ctx, "t", topic.Config{Partitions: 1, MaxBatchBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	good := batchOf(t, plain, "ok")
	if _, err := tn.b.Produce(ctx, "t", 0, good); err != nil {
		t.Fatal(err)
	}
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	big := batchOf(t, plain, string(make([]byte, 5000)))
	tests := []struct {
		name  string
		topic string
		part  int32
		batch []byte
		want  error
	}{
		{"unknown topic", "nope", 0, good, topic.ErrUnknownTopic},
		{"invalid topic name", "bad/name", 0, good, ErrInvalidName},
		{"unknown partition", "t", 3, good, topic.ErrUnknownPartition},
		{"negative partition", "t", -1, good, topic.ErrUnknownPartition},
		{"bad crc", "t", 0, badCRC, ErrInvalidBatch},
		{"truncated", "t", 0, good[:len(good)-3], ErrInvalidBatch},
		{"trailing bytes", "t", 0, append(append([]byte(nil), good...), 1, 2, 3), ErrInvalidBatch},
		{"empty", "t", 0, nil, ErrInvalidBatch},
		{"too large", "t", 0, big, ErrBatchTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tn.b.Produce(ctx, tc.topic, tc.part, tc.batch)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if got := values(t, tn.b, "t", 0, 0); len(got) != 1 {
				t.Fatalf("log holds %d records after a refused produce, want 1", len(got))
			}
		})
	}
	if _, err := tn.b.Fetch(ctx, "t", 0, 5, 1024, 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("fetch past the end: %v, want ErrOffsetOutOfRange", err)
	}
	if _, err := tn.b.CreateTopic(ctx, "t", topic.Config{}); !errors.Is(err, topic.ErrTopicExists) {
		t.Fatalf("create twice: %v", err)
	}
	if _, err := tn.b.CreateTopic(ctx, "x", topic.Config{ReplicationFactor: 3}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("rf 3 on one node: %v", err)
	}
}

func TestIdempotentProducer(t *testing.T) {
	tn := openTestNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := tn.b.CreateTopic(ctx, "t", topic.Config{}); err != nil {
		t.Fatal(err)
	}
	pid, _, err := tn.b.InitProducer(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	opt := func(seq int32) record.BatchOptions { return record.BatchOptions{ProducerID: pid, BaseSequence: seq} }
	first := batchOf(t, opt(0), "a", "b", "c")
	r1, err := tn.b.Produce(ctx, "t", 0, first)
	if err != nil || r1.BaseOffset != 0 || r1.Duplicate {
		t.Fatalf("first: %+v %v", r1, err)
	}
	r2, err := tn.b.Produce(ctx, "t", 0, first) // a retry
	if err != nil || !r2.Duplicate || r2.BaseOffset != 0 {
		t.Fatalf("retry: %+v %v, want duplicate at 0", r2, err)
	}
	_, err = tn.b.Produce(ctx, "t", 0, batchOf(t, opt(5), "gap"))
	var se *topic.SequenceError
	if !errors.As(err, &se) || se.Expected != 3 {
		t.Fatalf("gap: %v, want a SequenceError expecting 3", err)
	}
	_, err = tn.b.Produce(ctx, "t", 0, batchOf(t, opt(2), "c", "d")) // overlaps: c is written
	if !errors.As(err, &se) || se.Expected != 3 {
		t.Fatalf("overlap: %v, want a SequenceError expecting 3", err)
	}
	// The producer state survives a restart: the retry is still a duplicate.
	// The resumed producer writes with the new epoch it was given.
	tn = tn.reopen()
	_, epoch, err := tn.b.InitProducer(ctx, pid)
	if err != nil {
		t.Fatalf("resume producer: %v", err)
	}
	opt = func(seq int32) record.BatchOptions {
		return record.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}
	}
	r3, err := tn.b.Produce(ctx, "t", 0, batchOf(t, opt(0), "a", "b", "c"))
	if err != nil || !r3.Duplicate {
		t.Fatalf("retry after restart: %+v %v", r3, err)
	}
	r4, err := tn.b.Produce(ctx, "t", 0, batchOf(t, opt(3), "d"))
	if err != nil || r4.BaseOffset != 3 {
		t.Fatalf("next after restart: %+v %v", r4, err)
	}
	if got := values(t, tn.b, "t", 0, 0); fmt.Sprint(got) != "[a b c d]" {
		t.Fatalf("log %v", got)
	}
	if _, _, err := tn.b.InitProducer(ctx, pid+100); !errors.Is(err, topic.ErrUnknownProducer) {
		t.Fatalf("unknown producer: %v", err)
	}
}

func TestGroupsCommitAndReset(t *testing.T) {
	tn := openTestNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := tn.b.CreateTopic(ctx, "t", topic.Config{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := tn.b.Produce(ctx, "t", 0, batchOf(t, plain, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	m1, err := tn.b.JoinGroup("g", "", "c1", []string{"t"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(m1.Assignments) != 3 {
		t.Fatalf("one member gets %d partitions, want 3", len(m1.Assignments))
	}
	m2, err := tn.b.JoinGroup("g", "", "c2", []string{"t"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := tn.b.Heartbeat("g", m1.MemberID, m1.Generation)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Generation != m2.Generation || len(h1.Assignments)+len(m2.Assignments) != 3 {
		t.Fatalf("after a second join: gen %d/%d, %d+%d partitions", h1.Generation, m2.Generation, len(h1.Assignments), len(m2.Assignments))
	}
	commit := func(member string, gen int32, off int64) error {
		return tn.b.CommitOffsets(ctx, "g", member, gen, []topic.PartitionOffset{{Topic: "t", Partition: 0, Offset: off}})
	}
	if err := commit(m1.MemberID, m1.Generation, 5); !errors.Is(err, ErrStaleGeneration) {
		t.Fatalf("commit from an old generation: %v", err)
	}
	if err := commit(m2.MemberID, m2.Generation, 6); err != nil {
		t.Fatal(err)
	}
	if err := commit(m2.MemberID, m2.Generation, 4); err != nil {
		t.Fatal(err)
	}
	if off := tn.b.FetchOffsets("g", []TopicPartition{{"t", 0}})[0].Offset; off != 6 {
		t.Fatalf("a commit moved the offset back to %d", off)
	}
	if err := commit("", 0, 7); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("standalone commit with members: %v", err)
	}
	if _, err := tn.b.ResetOffsets(ctx, "g", "t", nil, ResetSpec{Spec: SpecEarliest}); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("reset with members: %v", err)
	}
	d, err := tn.b.DescribeGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != "stable" || len(d.Members) != 2 || d.Partitions[0].LagRecords != 4 {
		t.Fatalf("describe: %+v", d)
	}
	for _, m := range []Membership{m1, m2} {
		if err := tn.b.LeaveGroup("g", m.MemberID); err != nil {
			t.Fatal(err)
		}
	}
	offs, err := tn.b.ResetOffsets(ctx, "g", "t", []int32{0}, ResetSpec{Spec: SpecEarliest})
	if err != nil || offs[0].Offset != 0 {
		t.Fatalf("reset: %v %v", offs, err)
	}
	if off := tn.b.FetchOffsets("g", []TopicPartition{{"t", 0}})[0].Offset; off != 0 {
		t.Fatalf("after reset: %d", off)
	}
}
