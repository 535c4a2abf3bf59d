package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/topic"
)

// stallableDisks stops the raft log writes of chosen (node, group) pairs:
// a replica whose disk stalls. Its raft goroutine blocks in StoreLogs, so it
// stores nothing new, while its transport still answers heartbeats.
type stallableDisks struct {
	mu    sync.Mutex
	gates map[string]chan struct{} // "node/group" -> closed when released
}

func (d *stallableDisks) wrap(node string) func(string, raft.LogStore) raft.LogStore {
	return func(group string, s raft.LogStore) raft.LogStore {
		return &stallableStore{LogStore: s, d: d, key: node + "/" + group}
	}
}

func (d *stallableDisks) stall(node, group string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gates == nil {
		d.gates = map[string]chan struct{}{}
	}
	d.gates[node+"/"+group] = make(chan struct{})
}

func (d *stallableDisks) releaseAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, g := range d.gates {
		close(g)
		delete(d.gates, k)
	}
}

type stallableStore struct {
	raft.LogStore
	d   *stallableDisks
	key string
}

func (s *stallableStore) StoreLogs(logs []*raft.Log) error {
	s.d.mu.Lock()
	g := s.d.gates[s.key]
	s.d.mu.Unlock()
	if g != nil {
		<-g
	}
	return s.LogStore.StoreLogs(logs)
}

func (s *stallableStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func aliveMembers(n *Node) map[string]bool {
	alive := map[string]bool{}
	for _, m := range n.Members() {
		alive[m.ID] = m.Status == MemberStatusAlive
	}
	return alive
}

// A follower whose disk stalls stays alive for gossip and keeps answering
// raft's heartbeats, so neither says anything is wrong; it stops holding
// what its leader commits, and every node reports it lagging within the
// lag timeout (the leader from its own tracker, the others from the
// leader's gossip tags). Once its disk is back it catches up and is in
// sync again.
func TestClusterLaggingFollower(t *testing.T) {
	const lagAfter = time.Second
	disks := &stallableDisks{}
	nodes := startTestCluster(t, 3, func(c *NodeConfig) {
		c.Raft.ReplicaLagTimeout = lagAfter
		c.Raft.wrapLogStore = disks.wrap(c.ID)
	})
	t.Cleanup(disks.releaseAll) // runs before the nodes stop
	ml := metaLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	groups, err := ml.node.EnsureDataGroups(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	g := groups[len(groups)-1]
	// Wait for the preferred leader: a leadership transfer in the middle
	// would restart the leader's tracking.
	wait.NoError(t, 20*time.Second, "the preferred leader leads", func() error {
		if l, _ := groupLeader(t, nodes, g.ID); l.id != g.Preferred {
			return fmt.Errorf("led by %s", l.id)
		}
		return nil
	})
	_, dg := groupLeader(t, nodes, g.ID)
	k := PartKey{TopicID: 1, Partition: 0}
	if _, err := dg.Group.Apply(ctx, CreatePartitionCmd("t", k, topic.Config{Partitions: 1, ReplicationFactor: 3})); err != nil {
		t.Fatal(err)
	}
	// A steady trickle of writes, committed by the leader and one follower
	// whatever the third does.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := dg.Group.Apply(ctx, ProduceCmd(k, testBatch(t, 100, i))); err != nil {
				t.Errorf("produce %d: %v", i, err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	lagEverywhere := func(want []string) func() error {
		return func() error {
			for _, c := range nodes {
				if got := c.node.Lagging(g.ID, aliveMembers(c.node)); !slices.Equal(got, want) {
					return fmt.Errorf("%s reports lagging %v, want %v", c.id, got, want)
				}
			}
			return nil
		}
	}
	wait.NoError(t, 10*time.Second, "every voter in sync", lagEverywhere(nil))

	var victim string
	for _, v := range g.Voters {
		if v != g.Preferred {
			victim = v
			break
		}
	}
	// Heartbeat failures are what the leader's status used before.
	var hbFailed atomic.Int32
	dg.Group.Raft().RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if f, ok := o.Data.(raft.FailedHeartbeatObservation); ok && string(f.PeerID) == victim {
			hbFailed.Add(1)
		}
		return false
	}))
	disks.stall(victim, groupName(g.ID))
	stalled := time.Now()
	wait.NoError(t, 10*lagAfter, victim+" lagging on every node", lagEverywhere([]string{victim}))
	if d := time.Since(stalled); d < lagAfter {
		t.Fatalf("%s reported lagging %v after its disk stalled, before the lag timeout %v", victim, d, lagAfter)
	}
	// What the status showed before (gossip and heartbeats) sees nothing.
	if alive := aliveMembers(ml.node); !alive[victim] {
		t.Fatalf("gossip says %s is not alive: the test no longer tells the lag measure from gossip", victim)
	}
	if n := hbFailed.Load(); n > 0 {
		t.Fatalf("%d failed heartbeats to %s: the test no longer tells the lag measure from heartbeats", n, victim)
	}

	disks.releaseAll()
	wait.NoError(t, 10*time.Second, "the follower back in sync", lagEverywhere(nil))
}

// The tracker counts a follower caught up only when a successful
// AppendEntries leaves it holding the leader's commit index; heartbeats and
// refusals do not count, and a new leader gives every follower one lag
// timeout to show it.
func TestReplicaTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newReplicaTracker(10 * time.Second)
	r.leaderChanged(t0)
	entries := func(n int) []*raft.Log { return make([]*raft.Log, n) }
	ok := &raft.AppendEntriesResponse{Success: true}
	steps := []struct {
		name string
		args *raft.AppendEntriesRequest
		resp *raft.AppendEntriesResponse
		at   time.Duration
	}{
		{"heartbeat", &raft.AppendEntriesRequest{}, ok, 5 * time.Second},
		{"refused", &raft.AppendEntriesRequest{PrevLogEntry: 10, Entries: entries(5), LeaderCommitIndex: 12}, &raft.AppendEntriesResponse{}, 6 * time.Second},
		{"behind the commit", &raft.AppendEntriesRequest{PrevLogEntry: 10, Entries: entries(1), LeaderCommitIndex: 12}, ok, 7 * time.Second},
		{"caught up", &raft.AppendEntriesRequest{PrevLogEntry: 10, Entries: entries(2), LeaderCommitIndex: 12}, ok, 8 * time.Second},
		{"idle probe", &raft.AppendEntriesRequest{PrevLogEntry: 20, LeaderCommitIndex: 20}, ok, 9 * time.Second},
	}
	for _, s := range steps {
		r.observe("a", s.args, s.resp, t0.Add(s.at))
	}
	// Only b's first step counts for it: b was never caught up.
	r.observe("b", steps[2].args, ok, t0.Add(time.Second))
	got := map[string]bool{}
	for _, id := range []raft.ServerID{"a", "b", "c"} {
		got[string(id)] = r.lagging(id, t0.Add(15*time.Second))
	}
	if want := map[string]bool{"a": false, "b": true, "c": true}; !maps.Equal(got, want) {
		t.Fatalf("lagging at +15s: %v, want %v", got, want)
	}
	if !r.lagging("a", t0.Add(19*time.Second+time.Millisecond)) {
		t.Fatal("a not lagging 10 s after it was last caught up")
	}
	r.leaderChanged(t0.Add(20 * time.Second))
	if r.lagging("b", t0.Add(25*time.Second)) || !r.lagging("b", t0.Add(31*time.Second)) {
		t.Fatal("a new leader does not give b one lag timeout")
	}
}

func TestLagTagRoundTrip(t *testing.T) {
	in := map[uint32][]string{3: {"host;x=1,2", "n1"}, 12: {"n2"}, 7: nil}
	enc := encodeLagTag(in)
	if want := "3=host%3Bx%3D1%2C2,n1;12=n2"; enc != want {
		t.Fatalf("encoded %q, want %q", enc, want)
	}
	got := decodeLagTag(enc + ";garbage;=x")
	if len(got) != 2 {
		t.Fatalf("decoded %v from %q", got, enc)
	}
	for gid, ids := range in {
		for _, id := range ids {
			if !got[gid][id] {
				t.Fatalf("group %d: %v lacks %q", gid, got[gid], id)
			}
		}
	}
	if len(decodeLagTag("")) != 0 {
		t.Fatal("an empty tag decodes to something")
	}
}
