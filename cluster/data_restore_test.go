package cluster

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster/mux"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// restoreTestGroup is a single-voter data group whose state lives in dir,
// so that it can be closed and opened again on the same files.
type restoreTestGroup struct {
	g   *Group
	fsm *DataFSM
}

// openRestoreTestGroup opens (or reopens) a single-voter data group in dir
// with 1 KiB segments, and waits until it leads and has applied its log.
func openRestoreTestGroup(t *testing.T, dir string, m *mux.Mux, seg func(topic.Config) segment.Config) *restoreTestGroup {
	t.Helper()
	fsm, err := NewDataFSM(DataFSMConfig{
		Dir:     filepath.Join(dir, "partitions"),
		SnapDir: filepath.Join(dir, "snapdata"),
		Segment: seg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fsm.Close() })
	gc := testGroupConfig("data-0", "n1", dir)
	gc.SnapDataDir = filepath.Join(dir, "snapdata")
	g := openTestGroup(t, gc, fsm, m)
	if err := g.BootstrapIfNew(nil); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	wait.For(t, 10*time.Second, "leadership", g.IsLeader)
	if err := g.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	return &restoreTestGroup{g: g, fsm: fsm}
}

func (r *restoreTestGroup) close(t *testing.T) {
	t.Helper()
	if err := r.g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.fsm.Close(); err != nil {
		t.Fatal(err)
	}
}

// produce applies batches[from:to] and checks that each gets its index as
// its offset (one record per batch).
func (r *restoreTestGroup) produce(t *testing.T, k PartKey, batches [][]byte, from, to int) {
	t.Helper()
	ctx := testCtx(t)
	for i := from; i < to; i++ {
		res, err := r.g.Apply(ctx, ProduceCmd(k, batches[i]))
		if err != nil {
			t.Fatal(err)
		}
		if pr, ok := res.(ProduceResult); !ok || pr.BaseOffset != int64(i) {
			t.Fatalf("produce %d: %#v, want offset %d", i, res, i)
		}
	}
}

// checkRecords checks that the partition holds batches[from:] at their
// offsets, and nothing after them.
func checkRecords(t *testing.T, lg LogView, batches [][]byte, from int) {
	t.Helper()
	if hw := lg.HighWatermark(); hw != int64(len(batches)) {
		t.Fatalf("high watermark %d, want %d", hw, len(batches))
	}
	for off := from; off < len(batches); off++ {
		got, err := lg.Read(int64(off), 1)
		if err != nil {
			t.Fatalf("read offset %d: %v", off, err)
		}
		h, err := segment.ParseBatchHeader(got)
		want := batches[off]
		// The base offset (the first 8 bytes) is assigned by the log.
		if err != nil || h.BaseOffset != int64(off) || len(got) < len(want) || !bytes.Equal(got[8:len(want)], want[8:]) {
			t.Fatalf("offset %d: read %d bytes (header %+v, %v), want the batch produced there", off, len(got), h, err)
		}
	}
}

// Retention deleted the segments holding the last snapshot's high watermark
// (and more): the node must still start, with the high watermark and the
// records retention kept at their offsets, and take new records after them.
// Before the fix the restore's Truncate to the snapshot's high watermark
// failed (below the log start offset), so raft.NewRaft failed.
func TestDataGroupRestartAfterRetentionPassedSnapshot(t *testing.T) {
	dir := t.TempDir()
	m := newTestMux(t)
	seg := func(topic.Config) segment.Config {
		c := segment.DefaultConfig()
		c.MaxSegmentBytes = 1 << 10
		c.MaxIndexBytes = 1 << 12
		c.Fsync = segment.FsyncNever
		c.RetentionBytes = 2 << 10
		return c
	}
	k := PartKey{TopicID: 7, Partition: 0}
	var batches [][]byte
	for i := 0; i < 41; i++ {
		batches = append(batches, testBatch(t, 300, i))
	}

	r := openRestoreTestGroup(t, dir, m, seg)
	if _, err := r.g.Apply(testCtx(t), CreatePartitionCmd("t", k, topic.Config{Partitions: 1, MaxBatchBytes: 1 << 20})); err != nil {
		t.Fatal(err)
	}
	r.produce(t, k, batches, 0, 10)
	if err := r.g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	r.produce(t, k, batches, 10, 30)
	lg := r.fsm.Partition(k).Log
	if _, err := r.fsm.Partition(k).EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	start := lg.StartOffset()
	if start <= 10 {
		t.Fatalf("retention kept the log from %d; the test needs it past the snapshot's high watermark 10", start)
	}
	checkRecords(t, lg, batches[:30], int(start))
	r.close(t)

	r = openRestoreTestGroup(t, dir, m, seg)
	p := r.fsm.Partition(k)
	if p == nil {
		t.Fatal("partition missing after restart")
	}
	if s := p.Log.StartOffset(); s > start {
		t.Fatalf("start offset %d after restart, was %d: records lost", s, start)
	}
	checkRecords(t, p.Log, batches[:30], int(start))
	r.produce(t, k, batches, 30, 41)
	checkRecords(t, p.Log, batches, int(start))

	// And once more, now that the restart's own state is on disk.
	r.close(t)
	r = openRestoreTestGroup(t, dir, m, seg)
	checkRecords(t, r.fsm.Partition(k).Log, batches, int(start))
}

// A flipped bit in a batch below the snapshot's high watermark (durable
// since the snapshot's Persist fsynced it) is corruption: Restore fails
// with the segment's *CorruptError and leaves the file as it was. Before,
// segment recovery cut the batch off as a torn tail and Restore failed
// only on the shorter log ("data lost"), with the evidence cut away.
func TestRestoreCorruptBatchBelowSnapshot(t *testing.T) {
	dir := t.TempDir()
	f := newTestDataFSM(t, dir)
	k := PartKey{TopicID: 3, Partition: 0}
	idx := uint64(0)
	apply := func(cmd []byte) any {
		idx++
		return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: cmd})
	}
	apply(CreatePartitionCmd("t", k, topic.Config{Partitions: 1, MaxBatchBytes: 1 << 20}))
	var last int64
	for i := 0; i < 20; i++ {
		last = f.Partition(k).Log.Size()
		if res, ok := apply(ProduceCmd(k, testBatch(t, 300, i))).(ProduceResult); !ok || res.BaseOffset != int64(i) {
			t.Fatalf("produce %d: %#v", i, res)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	logDir := f.Partition(k).Log.Dir()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logDir, "00000000000000000000.log")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[last+100] ^= 0x04 // in the records of the last batch, under its CRC
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}

	f2 := newTestDataFSM(t, dir)
	err = f2.Restore(io.NopCloser(&sink))
	var ce *segment.CorruptError
	if !errors.As(err, &ce) || ce.Path != path || ce.Pos != last {
		t.Fatalf("Restore: %v; want a *segment.CorruptError in %s at %d", err, path, last)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
		t.Fatalf("the corrupt segment was changed (%d bytes, was %d)", len(got), len(b))
	}
}
