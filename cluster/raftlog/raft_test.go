package raftlog

import (
	"encoding/binary"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countFSM counts applied commands; its snapshot is the count.
type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) any { return f.n.Add(1) }

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnap(f.n.Load()), nil }

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.n.Store(binary.BigEndian.Uint64(b[:]))
	return nil
}

type countSnap uint64

func (c countSnap) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(c))); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnap) Release() {}

// TestRaftSingleVoter runs a real raft group on the store: it applies,
// snapshots and compacts, restarts on the reopened store, and goes on.
func TestRaftSingleVoter(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, true)
	cfg.SegmentBytes = 8 << 10
	stable := raft.NewInmemStore()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snaps"), 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(dir, "raftlog")
	const addr = raft.ServerAddress("n1")

	start := func(fsm raft.FSM) (*raft.Raft, *Store) {
		t.Helper()
		store, err := Open(logDir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		cache, err := raft.NewLogCache(64, store)
		if err != nil {
			t.Fatal(err)
		}
		rc := raft.DefaultConfig()
		rc.LocalID = "n1"
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
		rc.TrailingLogs = 20
		rc.SnapshotThreshold, rc.SnapshotInterval = 1<<30, time.Hour // snapshots on demand only
		rc.Logger = hclog.NewNullLogger()
		_, trans := raft.NewInmemTransport(addr)
		r, err := raft.NewRaft(rc, fsm, cache, stable, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		has, err := raft.HasExistingState(cache, stable, snaps)
		if err != nil {
			t.Fatal(err)
		}
		if !has {
			if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: addr}}}).Error(); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.After(10 * time.Second)
		for r.State() != raft.Leader {
			select {
			case <-r.LeaderCh():
			case <-deadline:
				t.Fatal("no leader")
			}
		}
		return r, store
	}
	apply := func(r *raft.Raft, n int) {
		t.Helper()
		futures := make([]raft.ApplyFuture, n)
		for i := range futures {
			futures[i] = r.Apply(make([]byte, 200), 5*time.Second)
		}
		for _, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatal(err)
			}
		}
	}

	fsm := &countFSM{}
	r, store := start(fsm)
	apply(r, 300)
	segsBefore := len(segFiles(t, logDir))
	if err := r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	if first <= 1 || last-first+1 != 20 {
		t.Fatalf("after the snapshot the log is [%d, %d], want the last 20 entries (TrailingLogs)", first, last)
	}
	if n := len(segFiles(t, logDir)); n >= segsBefore {
		t.Fatalf("compaction left %d of %d segments", n, segsBefore)
	}
	apply(r, 50)
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: the snapshot is restored and the log after it replayed.
	fsm2 := &countFSM{}
	r, store = start(fsm2)
	defer store.Close()
	defer r.Shutdown()
	if err := r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if got := fsm2.n.Load(); got != 350 {
		t.Fatalf("after restart the FSM has %d commands, want 350", got)
	}
	apply(r, 10)
	if got := fsm2.n.Load(); got != 360 {
		t.Fatalf("FSM has %d commands, want 360", got)
	}
}
