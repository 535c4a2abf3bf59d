package cluster

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Lagging returns the voters of data group gid that are not in sync: those
// gossip says are not alive, and those the group's leader reports lagging
// (not caught up with its commit index within ReplicaLagTimeout, see
// replica_lag.go). The leader's view is exact on the leader; other nodes
// read it from the leader's gossip tags, published by its reconcile loop,
// so it reaches them about a ReconcileInterval and a gossip round later.
// While no leader is known, only gossip is used.
func (n *Node) Lagging(gid uint32, alive map[string]bool) []string {
	info, ok := n.MetaFSM.DataGroupInfo(gid)
	if !ok {
		return nil
	}
	lag := n.leaderLagView(gid)
	var out []string
	for _, v := range info.Voters {
		if !alive[v] || lag[v] {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// leaderLagView returns the voters that group gid's leader reports lagging.
func (n *Node) leaderLagView(gid uint32) map[string]bool {
	if dg := n.DataGroup(gid); dg != nil && dg.Group.IsLeader() {
		out := map[string]bool{}
		for _, v := range n.laggingLed(dg) {
			out[v] = true
		}
		return out
	}
	leader := n.GroupLeader(gid)
	if leader == "" || n.members == nil {
		return nil
	}
	for _, m := range n.members.Members() {
		if m.ID == leader {
			return decodeLagTag(m.Tags[tagLag])[gid]
		}
	}
	return nil
}

// laggingLed returns the voters of a group this node leads that its
// tracker reports lagging, sorted.
func (n *Node) laggingLed(dg *DataGroup) []string {
	info, ok := n.MetaFSM.DataGroupInfo(dg.ID)
	if !ok {
		return nil
	}
	now := time.Now()
	var out []string
	for _, v := range info.Voters {
		if v != n.cfg.ID && dg.Group.replicas.lagging(raft.ServerID(v), now) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// lagTag encodes the lagging voters of the groups this node leads for its
// gossip tags.
func (n *Node) lagTag(led []*DataGroup) string {
	lag := map[uint32][]string{}
	for _, dg := range led {
		if ids := n.laggingLed(dg); len(ids) > 0 {
			lag[dg.ID] = ids
		}
	}
	return encodeLagTag(lag)
}

// encodeLagTag encodes lagging voters by group as "gid=id,id;gid=id",
// groups in order, ids query-escaped (node ids are free text). Groups
// without lagging voters are left out, so the tag is empty while all is
// well (serf's tags share 512 bytes).
func encodeLagTag(lag map[uint32][]string) string {
	var parts []string
	for _, gid := range slices.Sorted(maps.Keys(lag)) {
		ids := make([]string, 0, len(lag[gid]))
		for _, id := range lag[gid] {
			ids = append(ids, url.QueryEscape(id))
		}
		if len(ids) > 0 {
			parts = append(parts, strconv.FormatUint(uint64(gid), 10)+"="+strings.Join(ids, ","))
		}
	}
	return strings.Join(parts, ";")
}

// decodeLagTag is the inverse of lagTag; malformed parts are skipped.
func decodeLagTag(s string) map[uint32]map[string]bool {
	out := map[uint32]map[string]bool{}
	for part := range strings.SplitSeq(s, ";") {
		g, ids, ok := strings.Cut(part, "=")
		gid, err := strconv.ParseUint(g, 10, 32)
		if !ok || err != nil {
			continue
		}
		set := map[string]bool{}
		for id := range strings.SplitSeq(ids, ",") {
			if v, err := url.QueryUnescape(id); err == nil && v != "" {
				set[v] = true
			}
		}
		out[uint32(gid)] = set
	}
	return out
}

// MetaRole returns the role of node id in the metadata group: "leader",
// "voter", "nonvoter" or "none".
func (n *Node) MetaRole(id string) string {
	if lid, _ := n.Meta.Leader(); lid == id {
		return "leader"
	}
	servers, err := n.Meta.Servers()
	if err != nil {
		return "unknown"
	}
	for _, s := range servers {
		if string(s.ID) == id {
			if s.Suffrage == raft.Voter {
				return "voter"
			}
			return "nonvoter"
		}
	}
	return "none"
}

// RaftIndexes is where a group's raft log stands on one node.
type RaftIndexes struct {
	// FirstLog is the first entry the log still holds (0 when it is
	// empty). A replica that needs an earlier entry can only catch up by
	// installing a snapshot.
	FirstLog uint64
	// LastLog is the last entry the log holds.
	LastLog uint64
	// Snapshot is the index of the last snapshot taken or installed here;
	// 0 when there is none.
	Snapshot uint64
}

// Indexes returns where the group's raft log stands on this node.
func (g *Group) Indexes() (RaftIndexes, error) {
	first, err := g.logs.FirstIndex()
	if err != nil {
		return RaftIndexes{}, fmt.Errorf("cluster: group %s: first log index: %w", g.cfg.Name, err)
	}
	snap, err := strconv.ParseUint(g.raft.Stats()["last_snapshot_index"], 10, 64)
	if err != nil {
		return RaftIndexes{}, fmt.Errorf("cluster: group %s: last snapshot index: %w", g.cfg.Name, err)
	}
	return RaftIndexes{FirstLog: first, LastLog: g.raft.LastIndex(), Snapshot: snap}, nil
}

// Term returns the group's current raft term on this node.
func (g *Group) Term() uint64 { return g.raft.CurrentTerm() }

// LeaderChanges returns how many times this node has learned of a new
// leader of the group (itself or another) since it opened the group: each
// election that ended with a leader it heard of counts once. A node that
// loses its leader and hears of the same one again counts that too.
func (g *Group) LeaderChanges() uint64 { return g.leaderChanges.Load() }

// watchLeaders counts raft's leader observations. The filter does the
// work and delivers nothing, so no goroutine drains a channel and none is
// dropped; raft forgets its observers when it shuts down.
func (g *Group) watchLeaders() {
	g.raft.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
			g.leaderChanges.Add(1)
		}
		return false
	}))
}
