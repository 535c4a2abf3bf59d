package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// testClusterNode is one in-process node of a test cluster.
type testClusterNode struct {
	t    *testing.T
	id   string
	dir  string
	join []string
	node *Node
	// tune, if set, changes the node's configuration before each start.
	tune func(*NodeConfig)
	// The addresses of the first start, kept across restarts (as a real
	// node's configured ports are).
	clusterAddr, gossipAddr string
}

func testNodeConfig(id, dir string, join []string) NodeConfig {
	rc := DefaultGroupConfig()
	rc.HeartbeatTimeout = 300 * time.Millisecond
	rc.ElectionTimeout = 300 * time.Millisecond
	rc.LeaderLeaseTimeout = 200 * time.Millisecond
	rc.SnapshotThreshold = 1 << 20 // tests take snapshots explicitly
	rc.TrailingLogs = 8
	rc.NoSync = true
	g := DefaultMembershipConfig()
	g.BindAddr = "127.0.0.1:0"
	g.ProbeInterval = 200 * time.Millisecond
	g.ProbeTimeout = 100 * time.Millisecond
	g.GossipInterval = 50 * time.Millisecond
	g.LeavePropagateDelay = 0
	return NodeConfig{
		ID: id, Dir: dir, ClusterAddr: "127.0.0.1:0", GRPCAddr: "grpc-of-" + id,
		Gossip: g, Join: join, DataGroups: 2, ReconcileInterval: 100 * time.Millisecond,
		Segment: func(topic.Config) segment.Config {
			c := segment.DefaultConfig()
			c.MaxSegmentBytes = 64 << 10
			c.MaxIndexBytes = 1 << 14
			c.Fsync = segment.FsyncNever
			return c
		},
		Raft: rc,
	}
}

func (c *testClusterNode) start() {
	c.t.Helper()
	cfg := testNodeConfig(c.id, c.dir, c.join)
	if c.tune != nil {
		c.tune(&cfg)
	}
	if c.clusterAddr != "" {
		cfg.ClusterAddr, cfg.Gossip.BindAddr = c.clusterAddr, c.gossipAddr
	}
	n, err := OpenNode(context.Background(), cfg, nil)
	if err != nil {
		c.t.Fatalf("open node %s: %v", c.id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		n.Close()
		c.t.Fatalf("start node %s: %v", c.id, err)
	}
	c.node = n
	c.clusterAddr, c.gossipAddr = n.ClusterAddr(), n.GossipAddr()
}

func (c *testClusterNode) stop() {
	if c.node != nil {
		if err := c.node.Close(); err != nil {
			c.t.Errorf("close node %s: %v", c.id, err)
		}
		c.node = nil
	}
}

// startTestCluster starts n nodes; tune, if given, changes each node's
// configuration (the first one applies to every node).
func startTestCluster(t *testing.T, n int, tune ...func(*NodeConfig)) []*testClusterNode {
	t.Helper()
	var nodes []*testClusterNode
	for i := range n {
		c := &testClusterNode{t: t, id: fmt.Sprintf("n%d", i+1), dir: t.TempDir()}
		if len(tune) > 0 {
			c.tune = tune[0]
		}
		if i > 0 {
			c.join = []string{nodes[0].node.GossipAddr()}
		}
		c.start()
		t.Cleanup(c.stop)
		nodes = append(nodes, c)
	}
	wait.NoError(t, 20*time.Second, "every node registered in the metadata group", func() error {
		for _, c := range nodes {
			if got := len(c.node.MetaFSM.NodeInfos()); got != n {
				return fmt.Errorf("%s knows %d nodes", c.id, got)
			}
			if r := nodes[0].node.MetaRole(c.id); r == "none" || r == "unknown" {
				return fmt.Errorf("%s is %s in the metadata group", c.id, r)
			}
		}
		return nil
	})
	return nodes
}

// metaLeader returns the node that leads the metadata group.
func metaLeader(t *testing.T, nodes []*testClusterNode) *testClusterNode {
	t.Helper()
	var l *testClusterNode
	wait.NoError(t, 10*time.Second, "a metadata leader", func() error {
		for _, c := range nodes {
			if c.node != nil && c.node.Meta.IsLeader() {
				l = c
				return nil
			}
		}
		return fmt.Errorf("none")
	})
	return l
}

// groupLeader returns the node leading data group id.
func groupLeader(t *testing.T, nodes []*testClusterNode, id uint32) (*testClusterNode, *DataGroup) {
	t.Helper()
	var l *testClusterNode
	var dg *DataGroup
	wait.NoError(t, 15*time.Second, fmt.Sprintf("a leader of data group %d", id), func() error {
		for _, c := range nodes {
			if c.node == nil {
				continue
			}
			if d := c.node.DataGroup(id); d != nil && d.Group.IsLeader() {
				l, dg = c, d
				return nil
			}
		}
		return fmt.Errorf("none")
	})
	return l, dg
}

func testBatch(t *testing.T, size int, n int) []byte {
	t.Helper()
	b, err := record.AppendBatch(nil, []record.Record{{Value: bytes.Repeat([]byte{byte('a' + n%26)}, size)}}, record.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A 3-node cluster creates replicated data groups with preferred leaders
// spread over the nodes, and the groups' leaders follow the preference.
func TestClusterDataGroupsAndPreferredLeaders(t *testing.T) {
	nodes := startTestCluster(t, 3)
	ml := metaLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	groups, err := ml.node.EnsureDataGroups(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var rf3 []DataGroupInfo
	for _, g := range groups {
		if len(g.Voters) == 3 {
			rf3 = append(rf3, g)
		}
	}
	if len(rf3) != 2 { // 3 nodes x 2 groups per node / RF 3
		t.Fatalf("%d groups of 3 voters, want 2: %+v", len(rf3), groups)
	}
	if rf3[0].Preferred == rf3[1].Preferred {
		t.Fatalf("both groups prefer %s", rf3[0].Preferred)
	}
	for _, g := range rf3 {
		wait.NoError(t, 20*time.Second, fmt.Sprintf("group %d led by its preferred %s", g.ID, g.Preferred), func() error {
			for _, c := range nodes {
				dg := c.node.DataGroup(g.ID)
				if dg == nil {
					return fmt.Errorf("%s has not opened group %d", c.id, g.ID)
				}
				if l, _ := dg.Group.Leader(); l != g.Preferred {
					return fmt.Errorf("%s sees leader %q", c.id, l)
				}
			}
			return nil
		})
	}
	// A node outside a group's leadership names the leader from gossip.
	if got := nodes[0].node.GroupLeader(rf3[1].ID); got != rf3[1].Preferred {
		t.Fatalf("GroupLeader(%d) = %q, want %q", rf3[1].ID, got, rf3[1].Preferred)
	}
}

// A replica whose data is wiped comes back empty while the leader's raft
// log has been compacted past everything it held: it is brought up to date
// through the snapshot, whose segment files are streamed, and then serves
// the same bytes as the leader.
func TestClusterCatchUpThroughSnapshot(t *testing.T) {
	nodes := startTestCluster(t, 3)
	ml := metaLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	groups, err := ml.node.EnsureDataGroups(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	gid := groups[len(groups)-1].ID
	wait.NoError(t, 20*time.Second, "the preferred leader leads", func() error {
		if l, _ := groupLeader(t, nodes, gid); l.id != groups[len(groups)-1].Preferred {
			return fmt.Errorf("led by %s", l.id)
		}
		return nil
	})
	_, dg := groupLeader(t, nodes, gid)
	k := PartKey{TopicID: 1, Partition: 0}
	if _, err := dg.Group.Apply(ctx, CreatePartitionCmd("t", k, topic.Config{Partitions: 1, ReplicationFactor: 3})); err != nil {
		t.Fatal(err)
	}
	// produce writes through whichever node leads: on 2 loaded cores a
	// 300 ms heartbeat can lose leadership mid-test, which is not what
	// this test is about (a retried batch may be written twice, the same
	// on every replica).
	produce := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			for attempt := 1; ; attempt++ {
				_, dg := groupLeader(t, nodes, gid)
				_, err := dg.Group.Apply(ctx, ProduceCmd(k, testBatch(t, 1000, i)))
				if err == nil {
					break
				}
				if !errors.Is(err, ErrNotLeader) || attempt == 5 {
					t.Fatalf("produce %d: %v", i, err)
				}
			}
		}
	}
	produce(0, 200)

	// Wipe a follower.
	var victim *testClusterNode
	for _, c := range nodes {
		if d := c.node.DataGroup(gid); d != nil && !d.Group.IsLeader() && c != ml {
			victim = c
			break
		}
	}
	if victim == nil {
		t.Fatal("no follower to wipe outside the metadata leader")
	}
	victim.stop()
	if err := os.RemoveAll(victim.dir); err != nil {
		t.Fatal(err)
	}
	produce(200, 200)
	// Compact the raft log of both remaining replicas past everything:
	// whichever leads, only a snapshot can bring the victim back.
	for _, c := range nodes {
		if c == victim {
			continue
		}
		d := c.node.DataGroup(gid)
		if err := d.Group.Snapshot(); err != nil {
			t.Fatal(err)
		}
		if first, _ := d.Group.logs.FirstIndex(); first <= 2 {
			t.Fatalf("raft log of %s not compacted: first index %d", c.id, first)
		}
	}
	for _, c := range nodes {
		if c != victim && c != ml && c.node != nil {
			victim.join = []string{c.node.GossipAddr()}
		}
	}
	victim.join = append(victim.join, ml.node.GossipAddr())
	start := time.Now()
	victim.start()
	leaderPart := func() *Partition {
		_, dg := groupLeader(t, nodes, gid)
		return dg.FSM.Partition(k)
	}
	wait.NoError(t, 30*time.Second, "the wiped replica catches up", func() error {
		d := victim.node.DataGroup(gid)
		if d == nil {
			return fmt.Errorf("group not open")
		}
		p := d.FSM.Partition(k)
		if p == nil {
			return fmt.Errorf("partition not there")
		}
		if lp := leaderPart(); p.Log.HighWatermark() != lp.Log.HighWatermark() {
			return fmt.Errorf("hw %d, leader %d", p.Log.HighWatermark(), lp.Log.HighWatermark())
		}
		return nil
	})
	t.Logf("wiped replica caught up in %v", time.Since(start))
	p := victim.node.DataGroup(gid).FSM.Partition(k)
	if len(p.Log.Segments()) < 2 {
		t.Fatalf("expected several segments, got %d", len(p.Log.Segments()))
	}
	got, err := p.Log.Read(0, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	want, err := leaderPart().Log.Read(0, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	for len(got) < len(want) {
		more, err := p.Log.Read(int64(countBatches(t, got)), 64<<20)
		if err != nil || len(more) == 0 {
			break
		}
		got = append(got, more...)
	}
	if !bytes.HasPrefix(got, want[:min(len(want), len(got))]) || len(got) < len(want) {
		t.Fatalf("the replica's bytes differ from the leader's (%d vs %d bytes)", len(got), len(want))
	}
	// It took the snapshot path: its snapshot directory holds segment files.
	ents, _ := filepath.Glob(filepath.Join(victim.dir, groupName(gid), "snapdata", "*", "*", "*.log"))
	if len(ents) == 0 {
		t.Fatal("no segment files under snapdata: the replica did not restore from a snapshot")
	}
	// And it keeps replicating after the snapshot.
	produce(400, 10)
	wait.NoError(t, 10*time.Second, "replication after the snapshot", func() error {
		if a, b := p.Log.HighWatermark(), leaderPart().Log.HighWatermark(); a != b {
			return fmt.Errorf("hw %d, leader %d", a, b)
		}
		return nil
	})
}

func countBatches(t *testing.T, b []byte) int {
	t.Helper()
	n := 0
	for len(b) >= 12 {
		h, err := segment.ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		n += int(h.RecordCount)
		b = b[h.Size():]
	}
	return n
}

// Placement: leaders 2/2/2 for 6 partitions on 3 nodes.
func TestPlacePartitionsSpreadsLeaders(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	groups := PlanDataGroups(nil, nodes, 3, 4, 0)
	if len(groups) != 4 {
		t.Fatalf("%d groups, want 4", len(groups))
	}
	as := PlacePartitions(groups, nil, 3, 6)
	leads := map[string]int{}
	for _, a := range as {
		g := groups[slices.IndexFunc(groups, func(g DataGroupInfo) bool { return g.ID == a.DataGroup })]
		leads[g.PreferredLeader()]++
		if len(a.Replicas) != 3 {
			t.Fatalf("replicas %v", a.Replicas)
		}
	}
	if leads["a"] != 2 || leads["b"] != 2 || leads["c"] != 2 {
		t.Fatalf("leaders %v, want 2/2/2", leads)
	}
	// A fourth node joins: new groups include it.
	more := PlanDataGroups(groups, append(nodes, "d"), 3, 4, 4)
	if len(more) == 0 || !slices.ContainsFunc(more, func(g DataGroupInfo) bool { return slices.Contains(g.Voters, "d") }) {
		t.Fatalf("no new group holds the new node: %+v", more)
	}
	// Removing a node replaces it in every group it held.
	changed := ReplaceNode(append(groups, more...), "a", []string{"b", "c", "d"})
	for _, g := range changed {
		if slices.Contains(g.Voters, "a") || g.PreferredLeader() == "a" {
			t.Fatalf("group %d still holds a: %+v", g.ID, g)
		}
		if len(g.Voters) != 3 {
			t.Fatalf("group %d shrank: %+v", g.ID, g)
		}
	}
}

// A node that stays failed past the dead-node timeout is removed by the
// metadata leader: its replicas move to the node that held none, which
// catches up, and the metadata group forgets it.
func TestClusterDeadNodeReplaced(t *testing.T) {
	nodes := startTestCluster(t, 4)
	ml := metaLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := ml.node.EnsureDataGroups(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// A group of 3 voters that leaves one node out and whose voters
	// include a node other than the metadata leader.
	var g DataGroupInfo
	var outside, victim string
	for _, cand := range ml.node.MetaFSM.DataGroupInfos() {
		if len(cand.Voters) != 3 {
			continue
		}
		for _, c := range nodes {
			if !slices.Contains(cand.Voters, c.id) {
				outside = c.id
			}
		}
		for _, v := range cand.Voters {
			if v != ml.id {
				victim = v
			}
		}
		g = cand
		break
	}
	_, dg := groupLeader(t, nodes, g.ID)
	k := PartKey{TopicID: 1, Partition: 0}
	wait.NoError(t, 10*time.Second, "create partition", func() error {
		_, dg = groupLeader(t, nodes, g.ID)
		_, err := dg.Group.Apply(ctx, CreatePartitionCmd("t", k, topic.Config{Partitions: 1, ReplicationFactor: 3}))
		return err
	})
	for i := range 50 {
		wait.NoError(t, 10*time.Second, "produce", func() error {
			_, dg = groupLeader(t, nodes, g.ID)
			_, err := dg.Group.Apply(ctx, ProduceCmd(k, testBatch(t, 100, i)))
			return err
		})
	}
	var v *testClusterNode
	for _, c := range nodes {
		if c.id == victim {
			v = c
		}
	}
	// Removing an alive node is refused.
	if err := ml.node.RemoveNode(ctx, victim); err == nil {
		t.Fatal("RemoveNode of an alive node succeeded")
	}
	v.stop()
	// The dead-node timeout is read by the leader's loop; set it now, on
	// every live node (whichever leads), to a short value.
	for _, c := range nodes {
		if c.node != nil {
			c.node.setDeadNodeTimeout(500 * time.Millisecond)
		}
	}
	wait.NoError(t, 30*time.Second, "the dead node's replica re-placed and caught up", func() error {
		l := metaLeader(t, nodes)
		if _, ok := l.node.MetaFSM.NodeInfo(victim); ok {
			return fmt.Errorf("%s still registered", victim)
		}
		info, _ := l.node.MetaFSM.DataGroupInfo(g.ID)
		if !slices.Contains(info.Voters, outside) || slices.Contains(info.Voters, victim) {
			return fmt.Errorf("voters %v", info.Voters)
		}
		for _, c := range nodes {
			if c.id != outside {
				continue
			}
			d := c.node.DataGroup(g.ID)
			if d == nil {
				return fmt.Errorf("%s has not opened the group", c.id)
			}
			p := d.FSM.Partition(k)
			if p == nil || p.Log.HighWatermark() != 50 {
				return fmt.Errorf("new replica not caught up")
			}
		}
		if r := l.node.MetaRole(victim); r != "none" {
			return fmt.Errorf("%s still %s in the metadata group", victim, r)
		}
		voters := 0
		for _, c := range nodes {
			if r := l.node.MetaRole(c.id); r == "voter" || r == "leader" {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("%d metadata voters, want 3", voters)
		}
		return nil
	})

	// The removed node comes back with its old state: it registers again
	// as a new, empty node and drops its copy of the group it was removed
	// from, instead of running a stale replica (or elections) of it.
	v.join = nil
	for _, c := range nodes {
		if c.node != nil {
			v.join = append(v.join, c.node.GossipAddr())
		}
	}
	v.start()
	wait.NoError(t, 30*time.Second, "the returning node drops its stale group", func() error {
		if _, ok := metaLeader(t, nodes).node.MetaFSM.NodeInfo(victim); !ok {
			return fmt.Errorf("%s not registered again", victim)
		}
		if v.node.DataGroup(g.ID) != nil {
			return fmt.Errorf("%s still runs group %d", victim, g.ID)
		}
		if _, err := os.Stat(filepath.Join(v.dir, groupName(g.ID))); !os.IsNotExist(err) {
			return fmt.Errorf("group %d's directory is still on %s (%v)", g.ID, victim, err)
		}
		return nil
	})
	info, _ := metaLeader(t, nodes).node.MetaFSM.DataGroupInfo(g.ID)
	if slices.Contains(info.Voters, victim) {
		t.Fatalf("the returning node is a voter of group %d again: %v", g.ID, info.Voters)
	}
}
