package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster/mux"
)

// testFSM appends each command to a slice; a command "err:<msg>" is a
// deterministic domain error, returned as a value and not stored. Its
// snapshot is the JSON of the slice.
type testFSM struct {
	mu       sync.Mutex
	cmds     []string
	restores int
	changed  chan struct{} // closed and replaced on every change
	gate     chan struct{} // if set, the command "block" waits for it
}

func newTestFSM() *testFSM { return &testFSM{changed: make(chan struct{})} }

func (f *testFSM) Apply(l *raft.Log) any {
	cmd := string(l.Data)
	if msg, ok := strings.CutPrefix(cmd, "err:"); ok {
		return errors.New(msg)
	}
	if cmd == "block" && f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	f.notifyLocked()
	return len(f.cmds)
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(f.cmds)
	return testSnapshot(b), err
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds []string
	if err := json.NewDecoder(rc).Decode(&cmds); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = cmds
	f.restores++
	f.notifyLocked()
	return nil
}

// Caller must hold f.mu.
func (f *testFSM) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *testFSM) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

// waitLen waits until the FSM holds n commands.
func (f *testFSM) waitLen(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		got, changed := len(f.cmds), f.changed
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("FSM holds %d commands after 10s, want %d", got, n)
		}
	}
}

type testSnapshot []byte

func (s testSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s testSnapshot) Release() {}

// testGroupConfig has timings fast enough for tests yet slow enough not to
// flap under -race on two shared cores.
func testGroupConfig(name, node, dir string) GroupConfig {
	c := DefaultGroupConfig()
	c.Name, c.NodeID, c.Dir = name, node, dir
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.NoSync = true
	return c
}

func openTestGroup(t *testing.T, cfg GroupConfig, fsm raft.FSM, m *mux.Mux) *Group {
	t.Helper()
	g, err := OpenGroup(cfg, fsm, m.Layer(cfg.Name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("close group %s: %v", cfg.Name, err)
		}
	})
	return g
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startSingle opens a group on a new mux, bootstraps it alone and waits
// until it leads.
func startSingle(t *testing.T, dir string, fsm raft.FSM, m *mux.Mux) *Group {
	t.Helper()
	g := openTestGroup(t, testGroupConfig("meta", "n1", dir), fsm, m)
	if err := g.BootstrapIfNew(nil); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitLeader(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGroupSingleVoter(t *testing.T) {
	dir := t.TempDir()
	m := newTestMux(t)
	fsm := newTestFSM()
	g := startSingle(t, dir, fsm, m)
	ctx := testCtx(t)

	if !g.IsLeader() {
		t.Fatal("single voter is not leader")
	}
	if id, addr := g.Leader(); id != "n1" || addr != m.Addr().String() {
		t.Fatalf("Leader() = %q, %q; want n1, %s", id, addr, m.Addr())
	}
	for i, cmd := range []string{"a", "b"} {
		resp, err := g.Apply(ctx, []byte(cmd))
		if err != nil {
			t.Fatal(err)
		}
		if resp != i+1 {
			t.Fatalf("Apply(%s) = %v, want %d", cmd, resp, i+1)
		}
	}
	if _, err := g.Apply(ctx, []byte("err:boom")); err == nil || err.Error() != "boom" || errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply of a failing command: %v, want the FSM's error boom", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.Apply(canceled, []byte("never")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a canceled context: %v, want context.Canceled", err)
	}

	// Existing state: BootstrapIfNew changes nothing.
	if err := g.BootstrapIfNew([]raft.Server{{ID: "x", Address: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	servers, err := g.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].ID != "n1" {
		t.Fatalf("servers = %v, want n1 only", servers)
	}

	for i := range 2 {
		if err := g.Close(); err != nil {
			t.Fatalf("close #%d: %v", i+1, err)
		}
	}
	if _, err := g.Apply(ctx, []byte("c")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v, want ErrClosed", err)
	}

	// Restart on the same dir and mux: the log is replayed into a new FSM,
	// and there is no second bootstrap.
	fsm2 := newTestFSM()
	g2 := openTestGroup(t, testGroupConfig("meta", "n1", dir), fsm2, m)
	if err := g2.BootstrapIfNew(nil); err != nil {
		t.Fatal(err)
	}
	if err := g2.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "leadership after restart", g2.IsLeader)
	if err := g2.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := fsm2.commands(), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("after restart FSM holds %q, want %q", got, want)
	}
	if resp, err := g2.Apply(ctx, []byte("c")); err != nil || resp != 3 {
		t.Fatalf("Apply after restart = %v, %v; want 3", resp, err)
	}
	if servers, err := g2.Servers(); err != nil || len(servers) != 1 {
		t.Fatalf("servers after restart = %v, %v; want n1 only", servers, err)
	}
}

func TestGroupApplyDeadline(t *testing.T) {
	m := newTestMux(t)
	fsm := newTestFSM()
	fsm.gate = make(chan struct{})
	g := startSingle(t, t.TempDir(), fsm, m)
	wait.For(t, 10*time.Second, "leadership", g.IsLeader)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := g.Apply(ctx, []byte("block"))
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply past its deadline: %v, want ErrTimeout and DeadlineExceeded", err)
	}
	// The entry is committed anyway once the FSM moves on; Close waits for
	// the abandoned wait to end.
	close(fsm.gate)
	fsm.waitLen(t, 1)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	inflight := g.inflight
	g.mu.Unlock()
	if inflight != 0 {
		t.Fatalf("%d raft futures still awaited after Close", inflight)
	}
}

func TestGroupSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	m := newTestMux(t)
	cfg := testGroupConfig("meta", "n1", dir)
	cfg.TrailingLogs = 2 // so that the snapshot compacts the log
	fsm := newTestFSM()
	g := openTestGroup(t, cfg, fsm, m)
	if err := g.BootstrapIfNew(nil); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := g.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "leadership", g.IsLeader)

	var want []string
	apply := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			cmd := fmt.Sprintf("cmd-%d", i)
			if _, err := g.Apply(ctx, []byte(cmd)); err != nil {
				t.Fatal(err)
			}
			want = append(want, cmd)
		}
	}
	apply(0, 10)
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	ix, err := g.Indexes()
	if err != nil {
		t.Fatal(err)
	}
	if ix.FirstLog <= 1 || ix.Snapshot < 10 || ix.LastLog < ix.Snapshot {
		t.Fatalf("indexes after a snapshot of 10 commands: %+v; want the log compacted behind a snapshot", ix)
	}
	apply(10, 15)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	fsm2 := newTestFSM()
	g2 := openTestGroup(t, cfg, fsm2, m)
	// raft restores the latest snapshot while opening.
	if fsm2.restores != 1 {
		t.Fatalf("restores = %d, want 1", fsm2.restores)
	}
	if got := fsm2.commands(); !slices.Equal(got, want[:10]) {
		t.Fatalf("after restore FSM holds %q, want %q", got, want[:10])
	}
	if err := g2.BootstrapIfNew(nil); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "leadership after restart", g2.IsLeader)
	if err := g2.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fsm2.commands(); !slices.Equal(got, want) {
		t.Fatalf("after restart FSM holds %q, want %q", got, want)
	}
}

// testNode is one node of an in-process cluster: one mux, several groups.
type testNode struct {
	id     string
	mux    *mux.Mux
	groups map[string]*Group
	fsms   map[string]*testFSM
}

func (n *testNode) close(t *testing.T) {
	t.Helper()
	for name, g := range n.groups {
		if err := g.Close(); err != nil {
			t.Errorf("node %s group %s: %v", n.id, name, err)
		}
	}
	if err := n.mux.Close(); err != nil {
		t.Errorf("node %s mux: %v", n.id, err)
	}
}

// leaderOf waits until one of the groups leads and returns it.
func leaderOf(t *testing.T, groups []*Group) *Group {
	t.Helper()
	var leader *Group
	wait.For(t, 10*time.Second, "a leader", func() bool {
		for _, g := range groups {
			if g.IsLeader() {
				leader = g
				return true
			}
		}
		return false
	})
	return leader
}

// applyOnLeader applies cmd on the current leader, moving on when a node
// answers raft.ErrNotLeader (then the entry was never appended).
func applyOnLeader(t *testing.T, groups []*Group, cmd string) {
	t.Helper()
	ctx := testCtx(t)
	for {
		_, err := leaderOf(t, groups).Apply(ctx, []byte(cmd))
		if err == nil {
			return
		}
		if !errors.Is(err, raft.ErrNotLeader) || ctx.Err() != nil {
			t.Fatalf("apply %s: %v", cmd, err)
		}
	}
}

func TestGroupThreeNodesTwoGroups(t *testing.T) {
	baseline := runtime.NumGoroutine()
	groupNames := []string{"meta", "data-0"}
	nodes := make([]*testNode, 3)
	var servers []raft.Server
	for i := range nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n := &testNode{id: fmt.Sprintf("n%d", i+1), mux: mux.NewMux(ln, nil),
			groups: map[string]*Group{}, fsms: map[string]*testFSM{}}
		t.Cleanup(func() { n.close(t) })
		nodes[i] = n
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: raft.ServerAddress(n.mux.Addr().String())})
	}
	base := t.TempDir()
	for _, n := range nodes {
		for _, name := range groupNames {
			fsm := newTestFSM()
			cfg := testGroupConfig(name, n.id, fmt.Sprintf("%s/%s/%s", base, n.id, name))
			g, err := OpenGroup(cfg, fsm, n.mux.Layer(name))
			if err != nil {
				t.Fatal(err)
			}
			n.groups[name], n.fsms[name] = g, fsm
		}
	}
	groupsOf := func(name string, ns []*testNode) []*Group {
		var gs []*Group
		for _, n := range ns {
			gs = append(gs, n.groups[name])
		}
		return gs
	}

	// "meta": every node bootstraps with the same three voters.
	for _, n := range nodes {
		if err := n.groups["meta"].BootstrapIfNew(servers); err != nil {
			t.Fatal(err)
		}
	}
	// "data-0": n1 bootstraps alone and adds the others.
	if err := nodes[0].groups["data-0"].BootstrapIfNew(nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range servers[1:] {
		for {
			err := leaderOf(t, groupsOf("data-0", nodes)).AddVoter(string(s.ID), string(s.Address))
			if err == nil {
				break
			}
			if !errors.Is(err, ErrNotLeader) {
				t.Fatalf("add voter %s: %v", s.ID, err)
			}
		}
	}
	ctx := testCtx(t)
	for _, name := range groupNames {
		for _, g := range groupsOf(name, nodes) {
			if err := g.WaitLeader(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}

	want := map[string][]string{}
	for _, name := range groupNames {
		for i := range 20 {
			cmd := fmt.Sprintf("%s-%d", name, i)
			applyOnLeader(t, groupsOf(name, nodes), cmd)
			want[name] = append(want[name], cmd)
		}
	}
	for _, n := range nodes {
		for _, name := range groupNames {
			n.fsms[name].waitLen(t, len(want[name]))
			if got := n.fsms[name].commands(); !slices.Equal(got, want[name]) {
				t.Fatalf("node %s group %s holds %q, want %q", n.id, name, got, want[name])
			}
		}
	}

	// A follower refuses writes and names the leader.
	leaderID, _ := leaderOf(t, groupsOf("meta", nodes)).Leader()
	var leaderNode *testNode
	for _, n := range nodes {
		if n.id == leaderID {
			leaderNode = n
		}
	}
	for _, n := range nodes {
		if n == leaderNode {
			continue
		}
		_, err := n.groups["meta"].Apply(ctx, []byte("on follower"))
		var nle *NotLeaderError
		if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nle) || !errors.Is(err, raft.ErrNotLeader) {
			t.Fatalf("Apply on follower %s: %v, want ErrNotLeader", n.id, err)
		}
		if nle.LeaderID != leaderID || nle.LeaderAddr != leaderNode.mux.Addr().String() {
			t.Fatalf("follower %s names leader %q at %q, want %q at %s",
				n.id, nle.LeaderID, nle.LeaderAddr, leaderID, leaderNode.mux.Addr())
		}
	}

	// Kill the metadata leader's node; the other two elect new leaders in
	// both groups and take writes.
	leaderNode.close(t)
	var rest []*testNode
	for _, n := range nodes {
		if n != leaderNode {
			rest = append(rest, n)
		}
	}
	for _, name := range groupNames {
		cmd := name + "-after"
		applyOnLeader(t, groupsOf(name, rest), cmd)
		want[name] = append(want[name], cmd)
		for _, n := range rest {
			n.fsms[name].waitLen(t, len(want[name]))
			if got := n.fsms[name].commands(); !slices.Equal(got, want[name]) {
				t.Fatalf("node %s group %s holds %q, want %q", n.id, name, got, want[name])
			}
		}
	}

	// The new metadata leader removes the dead node.
	newLeader := leaderOf(t, groupsOf("meta", rest))
	if err := newLeader.RemoveServer(leaderNode.id); err != nil {
		t.Fatal(err)
	}
	got, err := newLeader.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || slices.ContainsFunc(got, func(s raft.Server) bool { return string(s.ID) == leaderNode.id }) {
		t.Fatalf("servers after removal: %v", got)
	}

	// Closing every node ends every goroutine, raft's per-connection ones
	// included.
	for _, n := range nodes {
		n.close(t)
	}
	wait.Goroutines(t, 5*time.Second, baseline)
}

func TestGroupConfigValidate(t *testing.T) {
	valid := testGroupConfig("data-0", "n1", "/tmp/x")
	for _, tc := range []struct {
		name   string
		mutate func(*GroupConfig)
		ok     bool
	}{
		{"valid", func(*GroupConfig) {}, true},
		{"defaults need identity", func(c *GroupConfig) { *c = DefaultGroupConfig() }, false},
		{"bad name", func(c *GroupConfig) { c.Name = "data 0" }, false},
		{"no node id", func(c *GroupConfig) { c.NodeID = "" }, false},
		{"no dir", func(c *GroupConfig) { c.Dir = "" }, false},
		{"lease above heartbeat", func(c *GroupConfig) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, false},
		{"too many append entries", func(c *GroupConfig) { c.MaxAppendEntries = 2048 }, false},
		{"zero apply timeout", func(c *GroupConfig) { c.ApplyTimeout = 0 }, false},
		{"zero snapshot threshold", func(c *GroupConfig) { c.SnapshotThreshold = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.mutate(&c)
			err := c.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not match ErrInvalidConfig", err)
			}
		})
	}
}

func TestOpenGroupFailureClosesLayer(t *testing.T) {
	m := newTestMux(t)
	cfg := testGroupConfig("meta", "", t.TempDir()) // no NodeID
	if _, err := OpenGroup(cfg, newTestFSM(), m.Layer("meta")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("OpenGroup: %v, want ErrInvalidConfig", err)
	}
	// The failed OpenGroup closed its layer, so the name is free again.
	cfg.NodeID = "n1"

	// A failure after raft.db is open closes it again (else bolt's file
	// lock would make the next open time out) and closes the layer.
	blocker := filepath.Join(cfg.Dir, "snapshots")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenGroup(cfg, newTestFSM(), m.Layer("meta")); err == nil {
		t.Fatal("OpenGroup with a file in place of snapshots/ succeeded")
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	_ = openTestGroup(t, cfg, newTestFSM(), m)
}

// countFSM counts applied entries; its snapshot is empty.
type countFSM struct{ n atomic.Int64 }

func (f *countFSM) Apply(*raft.Log) any                 { return f.n.Add(1) }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return testSnapshot(nil), nil }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

// BenchmarkApply measures a single-voter group under 64 concurrent Applies
// of 14 KiB, with and without bolt's fsync.
func BenchmarkApply(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			m := mux.NewMux(ln, nil)
			defer m.Close()
			cfg := DefaultGroupConfig()
			cfg.Name, cfg.NodeID, cfg.Dir, cfg.NoSync = "data-0", "n1", b.TempDir(), noSync
			cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
			g, err := OpenGroup(cfg, &countFSM{}, m.Layer(cfg.Name))
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			if err := g.BootstrapIfNew(nil); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for !g.IsLeader() {
				if err := g.WaitLeader(ctx); err != nil {
					b.Fatal(err)
				}
				if err := g.Barrier(ctx); err != nil && !errors.Is(err, ErrNotLeader) {
					b.Fatal(err)
				}
			}
			payload := make([]byte, 14<<10)
			const workers = 64
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for range workers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := g.Apply(ctx, payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
		})
	}
}

func TestGroupCloseLeavesNoGoroutines(t *testing.T) {
	peer := newTestMux(t).Layer("meta")
	baseline := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := mux.NewMux(ln, nil)
	g, err := OpenGroup(testGroupConfig("meta", "n1", t.TempDir()), newTestFSM(), m.Layer("meta"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.BootstrapIfNew(nil); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	wait.For(t, 10*time.Second, "leadership", g.IsLeader)
	if _, err := g.Apply(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// An idle inbound connection, as a peer's pooled one: raft's transport
	// reads from it in a goroutine until it closes, and only the layer
	// closes it.
	idle, err := peer.Dial(serverAddr(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	wait.For(t, 5*time.Second, "the idle connection accepted", func() bool { return m.Conns("meta") == 1 })
	if err := errors.Join(g.Close(), m.Close()); err != nil {
		t.Fatal(err)
	}
	wait.Goroutines(t, 5*time.Second, baseline)
}
