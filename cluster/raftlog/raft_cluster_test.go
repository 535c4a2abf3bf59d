package raftlog

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestRaftFollowerTruncatesTail: a leader cut off from its two followers
// keeps appending entries that can never commit; the others elect a new
// leader and commit their own. When the old leader rejoins, raft deletes its
// conflicting tail (DeleteRange at the tail) and replaces it: its store,
// also after a reopen, must then equal the new leader's.
func TestRaftFollowerTruncatesTail(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	type node struct {
		id    raft.ServerID
		addr  raft.ServerAddress
		trans *raft.InmemTransport
		store *Store
		dir   string
		r     *raft.Raft
	}
	cfg := testConfig(t, false)
	nodes := make([]*node, 3)
	var servers []raft.Server
	for i := range nodes {
		n := &node{id: raft.ServerID(fmt.Sprintf("n%d", i)), dir: filepath.Join(t.TempDir(), "raftlog")}
		n.addr, n.trans = raft.NewInmemTransport(raft.ServerAddress(n.id))
		n.store = openTest(t, n.dir, cfg)
		nodes[i] = n
		servers = append(servers, raft.Server{ID: n.id, Address: n.addr})
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	for _, n := range nodes {
		rc := raft.DefaultConfig()
		rc.LocalID = n.id
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
		rc.Logger = hclog.NewNullLogger()
		var err error
		n.r, err = raft.NewRaft(rc, &countFSM{}, n.store, raft.NewInmemStore(), raft.NewInmemSnapshotStore(), n.trans)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.r.Shutdown().Error() })
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	leader := func(among []*node) *node {
		t.Helper()
		var l *node
		wait.For(t, 20*time.Second, "a leader", func() bool {
			for _, n := range among {
				if n.r.State() == raft.Leader {
					l = n
					return true
				}
			}
			return false
		})
		return l
	}
	old := leader(nodes)
	for i := range 20 {
		if err := old.r.Apply([]byte(fmt.Sprint("a", i)), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	var rest []*node
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
			old.trans.Disconnect(n.addr)
			n.trans.Disconnect(old.addr)
		}
	}
	// Entries on the cut-off leader that never commit.
	var futures []raft.ApplyFuture
	for i := range 30 {
		futures = append(futures, old.r.Apply(bytes.Repeat([]byte("x"), 500+i), time.Second))
	}
	newLeader := leader(rest)
	for i := range 10 {
		if err := newLeader.r.Apply([]byte(fmt.Sprint("b", i)), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range futures {
		if f.Error() == nil {
			t.Fatal("an entry of the cut-off leader committed")
		}
	}
	for _, n := range rest {
		old.trans.Connect(n.addr, n.trans)
		n.trans.Connect(old.addr, old.trans)
	}
	if err := newLeader.r.Apply([]byte("c"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	want, _ := newLeader.store.LastIndex()
	wait.For(t, 20*time.Second, fmt.Sprintf("the old leader to catch up to %d", want), func() bool {
		got, _ := old.store.LastIndex()
		return got == want && old.r.AppliedIndex() >= want
	})
	same := func(a *Store) {
		t.Helper()
		var x, y raft.Log
		for i := uint64(1); i <= want; i++ {
			if err := a.GetLog(i, &x); err != nil {
				t.Fatalf("GetLog(%d): %v", i, err)
			}
			if err := newLeader.store.GetLog(i, &y); err != nil {
				t.Fatal(err)
			}
			if !sameLog(&x, &y) {
				t.Fatalf("entry %d: %+v on the old leader, %+v on the new", i, x, y)
			}
		}
	}
	same(old.store)
	if err := old.r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	if err := old.store.Close(); err != nil {
		t.Fatal(err)
	}
	same(openTest(t, old.dir, cfg))
}
