package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/topic"
)

// The reconcile loop is level-triggered, as Consul's leader loop: it
// compares what should be (the metadata, and for the metadata leader the
// gossip membership) with what is (raft configurations, open groups) and
// makes one step towards it. Serf's events and metadata changes only wake
// it. Each node runs it:
//
//   - every node opens the data groups the metadata makes it a voter of
//     (bootstrapping a group it was an initial voter of when it has no
//     state for it) and drops those it was removed from;
//   - the metadata leader registers alive members as nodes, adds them to
//     the metadata group (voters up to MetadataVoters, then non-voters),
//     and removes nodes failed for longer than DeadNodeTimeout;
//   - the leader of each data group makes the group's raft configuration
//     match the metadata's voters, and hands leadership to the group's
//     preferred leader when it is alive;
//   - every node publishes the data groups it leads in its gossip tags, so
//     that nodes outside a group can still name its leader.

const (
	// reconcileTimeout bounds one round of the loop.
	reconcileTimeout = 10 * time.Second
	// transferBackoff is the least time between two leadership transfers
	// of one group, so that a preferred node that cannot take over (still
	// catching up) is not asked again and again.
	transferBackoff = 10 * time.Second
	// preferredSettle is how long a preferred leader must have been alive
	// before leadership goes back to it. A transfer stops the group's
	// writes until the target has caught up (up to ElectionTimeout), so
	// handing leadership to a node that has just restarted and is still
	// replaying would add that stall to the failover.
	preferredSettle = 5 * time.Second
)

// reconcileState is the reconcile goroutine's memory between rounds.
type reconcileState struct {
	status       map[string]string // gossip status seen last round
	returned     map[string]bool   // members that came back this round
	aliveSince   map[string]time.Time
	failedSince  map[string]time.Time
	lastTransfer map[uint32]time.Time
	lead         string // the lead tag last published
	lag          string // the lag tag last published
	admit        admitState
	// featureWarned limits the warnings about members too old to join.
	featureWarned map[string]time.Time
}

func (r *reconcileState) init() {
	r.status = map[string]string{}
	r.aliveSince = map[string]time.Time{}
	r.failedSince = map[string]time.Time{}
	r.lastTransfer = map[uint32]time.Time{}
	r.featureWarned = map[string]time.Time{}
	r.admit.init()
}

func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	var events <-chan MemberEvent
	if n.members != nil {
		events = n.members.Events()
	}
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case _, ok := <-events:
			if !ok {
				events = nil
			}
		case <-n.kickCh:
		case <-t.C:
		}
		n.reconcileOnce()
	}
}

func (n *Node) reconcileOnce() {
	ctx, cancel := context.WithTimeout(n.stopCtx, reconcileTimeout)
	defer cancel()
	n.noteReturns()
	n.syncLocalGroups()
	if n.Meta.IsLeader() {
		n.kickReplication(ctx, n.Meta, "meta", 0, n.metaVoters())
		if err := n.reconcileMeta(ctx); err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrClosed) {
			n.log.Warn("reconcile metadata", "err", err)
		}
	}
	n.reconcileLedGroups(ctx)
	n.publishLeads()
}

// noteReturns records which members came back (alive after failed or
// left) since the last round.
func (n *Node) noteReturns() {
	n.rec.returned = map[string]bool{}
	for _, m := range n.Members() {
		if prev, seen := n.rec.status[m.ID]; seen && prev != MemberStatusAlive && m.Status == MemberStatusAlive {
			n.rec.returned[m.ID] = true
		}
		n.rec.status[m.ID] = m.Status
	}
}

// kickReplication hands leadership of a group this node leads to another
// up-to-date voter when one of its voters has just come back. raft v1.7.3
// backs off replication to a follower that keeps failing up to about 10 s
// between attempts (failureWait x 2^10), and nothing cuts the wait short
// when the follower returns; a new leader starts with fresh replication
// state, so the returning node catches up at once instead of after the
// backoff. Groups of fewer than 3 voters are left alone (the only other
// voter is the one returning).
func (n *Node) kickReplication(ctx context.Context, g *Group, name string, id uint32, voters []string) {
	if len(voters) < 3 || !g.IsLeader() {
		return
	}
	back := ""
	for _, v := range voters {
		if v != n.cfg.ID && n.rec.returned[v] {
			back = v
		}
	}
	if back == "" {
		return
	}
	if name != "meta" {
		n.rec.lastTransfer[id] = time.Now()
	}
	n.log.Info("a voter came back; handing leadership on so that replication to it restarts without raft's backoff",
		"raft_group", raftGroupLabel(name), "voter", back)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := g.await(ctx, g.raft.LeadershipTransfer()); err != nil {
		n.log.Info("leadership transfer after a return failed", "raft_group", raftGroupLabel(name), "err", err)
	}
}

// metaVoters returns the voters of the metadata group.
func (n *Node) metaVoters() []string {
	servers, err := n.Meta.Servers()
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			out = append(out, string(s.ID))
		}
	}
	return out
}

// syncLocalGroups opens the data groups the metadata makes this node a
// voter of and drops those it no longer is a voter of.
func (n *Node) syncLocalGroups() {
	self := n.cfg.ID
	for _, g := range n.MetaFSM.DataGroupInfos() {
		mine := slices.Contains(g.Voters, self)
		dg := n.DataGroup(g.ID)
		switch {
		case mine && dg == nil:
			var err error
			if dg, err = n.openDataGroup(g.ID); err != nil {
				if !errors.Is(err, ErrClosed) {
					n.log.Warn("open data group", "raft_group", raftGroupID(g.ID), "err", err)
				}
				continue
			}
			if slices.Contains(g.Initial, self) {
				n.bootstrapDataGroup(dg, g)
			}
		case !mine && dg != nil && (n.removedFrom(dg) || n.strandedIn(dg)):
			if err := n.dropDataGroup(g.ID); err != nil {
				n.log.Warn("drop data group", "raft_group", raftGroupID(g.ID), "err", err)
			}
		}
	}
}

// bootstrapDataGroup bootstraps a new group with its initial voters, which
// each do the same with the same configuration, if this node has no state
// for it.
func (n *Node) bootstrapDataGroup(dg *DataGroup, g DataGroupInfo) {
	var servers []raft.Server
	for _, id := range g.Initial {
		info, ok := n.MetaFSM.NodeInfo(id)
		if !ok || info.ClusterAddr == "" {
			n.log.Warn("cannot bootstrap data group: a voter's address is unknown", "raft_group", raftGroupID(g.ID), "voter", id)
			return
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(info.ClusterAddr)})
	}
	if err := dg.Group.BootstrapIfNew(servers); err != nil {
		n.log.Warn("bootstrap data group", "raft_group", raftGroupID(g.ID), "err", err)
	}
}

// strandedIn reports whether this node holds a group that the metadata
// (up to date here) no longer places on it and whose leader has not
// contacted it for a while: the node was removed while it was down and
// came back with its old state. Its copy of the group's configuration
// still names it, so raft never shuts it down; it would only run elections
// that nobody answers. A replica being moved away while alive still hears
// from its leader until the leader removes it, so it is not dropped early.
func (n *Node) strandedIn(dg *DataGroup) bool {
	wait := 5 * n.cfg.Raft.HeartbeatTimeout
	r := dg.Group.Raft()
	return n.metaCurrent() && r.State() != raft.Leader &&
		time.Since(dg.opened) > wait && time.Since(r.LastContact()) > wait
}

// metaCurrent reports whether this node's metadata is up to date: it leads
// the metadata group, or has heard from its leader within a heartbeat
// timeout and applied everything known to be committed.
func (n *Node) metaCurrent() bool {
	r := n.Meta.Raft()
	if r.State() == raft.Leader {
		return true
	}
	if time.Since(r.LastContact()) > n.cfg.Raft.HeartbeatTimeout {
		return false
	}
	commit, err := strconv.ParseUint(r.Stats()["commit_index"], 10, 64)
	return err == nil && r.AppliedIndex() >= commit
}

// removedFrom reports whether this node's raft for the group says it is no
// longer a member (raft shuts a removed node's group down by itself).
func (n *Node) removedFrom(dg *DataGroup) bool {
	if dg.Group.Raft().State() == raft.Shutdown {
		return true
	}
	servers, err := dg.Group.Servers()
	if err != nil {
		return false
	}
	return !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == n.cfg.ID })
}

// reconcileMeta runs on the metadata leader: nodes, the metadata group's
// configuration, dead nodes. A member is registered only once admitted
// (admit.go).
func (n *Node) reconcileMeta(ctx context.Context) error {
	now := time.Now()
	alive := map[string]Member{}
	members := n.Members()
	n.forgetAdmissions(members)
	for _, m := range members {
		switch m.Status {
		case MemberStatusAlive:
			alive[m.ID] = m
			delete(n.rec.failedSince, m.ID)
		case MemberStatusFailed, MemberStatusLeft:
			if _, ok := n.rec.failedSince[m.ID]; !ok {
				n.rec.failedSince[m.ID] = now
			}
		}
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(alive)) {
		m := alive[id]
		info := NodeInfo{ID: id, GRPCAddr: m.Tags[tagGRPC], ClusterAddr: m.Tags[tagRaft], GossipAddr: m.Addr,
			KafkaAddr: m.Tags[tagKafka], Features: m.Tags[tagFeatures]}
		if id == n.cfg.ID {
			info = n.selfInfo()
		}
		if info.ClusterAddr == "" {
			continue
		}
		if known, _ := n.MetaFSM.NodeInfo(id); known != info {
			if !n.featuresFit(id, info.Features, now) || !n.admitted(ctx, id, info.ClusterAddr) {
				continue
			}
			if _, err := n.Meta.Apply(ctx, RegisterNodeCmd(info)); err != nil {
				return fmt.Errorf("register node %s: %w", id, err)
			}
			n.log.Info("registered node", "id", id, "grpc", info.GRPCAddr, "raft", info.ClusterAddr)
		}
	}
	errs = append(errs, n.reconcileMetaServers(alive))
	if d := time.Duration(n.deadNodeTimeout.Load()); d > 0 {
		for id, since := range n.rec.failedSince {
			if _, known := n.MetaFSM.NodeInfo(id); !known || now.Sub(since) < d || id == n.cfg.ID {
				continue
			}
			n.log.Warn("removing node failed for longer than the dead-node timeout", "id", id, "since", since)
			if err := n.RemoveNode(ctx, id); err != nil {
				errs = append(errs, err)
			}
			delete(n.rec.failedSince, id)
		}
	}
	return errors.Join(errs...)
}

// reconcileMetaServers makes the metadata group hold every registered node:
// the first MetadataVoters as voters, the others as non-voters; nodes no
// longer registered are removed.
func (n *Node) reconcileMetaServers(alive map[string]Member) error {
	servers, err := n.Meta.Servers()
	if err != nil {
		return err
	}
	nodes := n.MetaFSM.NodeInfos()
	voters := 0
	byID := map[string]raft.Server{}
	for _, s := range servers {
		byID[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	var errs []error
	for _, info := range nodes {
		if _, ok := alive[info.ID]; !ok || info.ClusterAddr == "" {
			continue
		}
		s, in := byID[info.ID]
		switch {
		case in && s.Suffrage == raft.Voter && string(s.Address) == info.ClusterAddr:
		case in && s.Suffrage == raft.Voter, voters < n.cfg.MetadataVoters:
			if !in || s.Suffrage != raft.Voter {
				voters++
			}
			n.log.Info("metadata group: adding voter", "id", info.ID, "addr", info.ClusterAddr)
			errs = append(errs, n.Meta.AddVoter(info.ID, info.ClusterAddr))
		case !in || string(s.Address) != info.ClusterAddr:
			n.log.Info("metadata group: adding non-voter", "id", info.ID, "addr", info.ClusterAddr)
			errs = append(errs, n.Meta.AddNonvoter(info.ID, info.ClusterAddr))
		}
	}
	for id := range byID {
		if !slices.ContainsFunc(nodes, func(i NodeInfo) bool { return i.ID == id }) && id != n.cfg.ID {
			n.log.Info("metadata group: removing server of a removed node", "id", id)
			errs = append(errs, n.Meta.RemoveServer(id))
		}
	}
	return errors.Join(errs...)
}

// RemoveNode removes a failed node from the cluster: its replicas are placed
// on other nodes (the groups' leaders then change their raft
// configurations), it leaves the metadata group and gossip forgets it. It
// must run on the metadata leader. A node that gossip says is alive is not
// removed (stop it first): it would register itself again.
func (n *Node) RemoveNode(ctx context.Context, id string) error {
	if !n.Meta.IsLeader() {
		lid, addr := n.Meta.Leader()
		return &NotLeaderError{Group: "meta", LeaderID: lid, LeaderAddr: addr, Err: raft.ErrNotLeader}
	}
	if id == n.cfg.ID {
		return fmt.Errorf("%w: node %s leads the metadata group; stop it (or remove it from another node) first", ErrInvalidConfig, id)
	}
	if _, ok := n.MetaFSM.NodeInfo(id); !ok {
		return fmt.Errorf("%w: node %q", topic.ErrUnknownNode, id)
	}
	var live []string
	alive := map[string]bool{}
	for _, m := range n.Members() {
		alive[m.ID] = m.Status == MemberStatusAlive
	}
	if alive[id] {
		return fmt.Errorf("%w: node %s is alive; stop it before removing it", ErrMemberAlive, id)
	}
	for _, info := range n.MetaFSM.NodeInfos() {
		if info.ID != id && alive[info.ID] {
			live = append(live, info.ID)
		}
	}
	changed := ReplaceNode(n.MetaFSM.DataGroupInfos(), id, live)
	if _, err := n.Meta.Apply(ctx, RemoveNodeCmd(id, changed)); err != nil {
		return fmt.Errorf("cluster: remove node %s: %w", id, err)
	}
	var errs []error
	if servers, err := n.Meta.Servers(); err == nil &&
		slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == id }) {
		errs = append(errs, n.Meta.RemoveServer(id))
	}
	if n.members != nil {
		if err := n.members.RemoveFailed(id); err != nil && !errors.Is(err, ErrMemberAlive) {
			errs = append(errs, err)
		}
	}
	n.log.Info("removed node", "id", id, "groups_replaced", len(changed))
	n.Kick()
	return errors.Join(errs...)
}

// reconcileLedGroups runs on the leader of each local data group.
func (n *Node) reconcileLedGroups(ctx context.Context) {
	now := time.Now()
	settled := map[string]bool{}
	for _, m := range n.Members() {
		if m.Status != MemberStatusAlive {
			delete(n.rec.aliveSince, m.ID)
			continue
		}
		since, ok := n.rec.aliveSince[m.ID]
		if !ok {
			since = now
			n.rec.aliveSince[m.ID] = now
		}
		settled[m.ID] = now.Sub(since) >= preferredSettle
	}
	for _, dg := range n.DataGroups() {
		if !dg.Group.IsLeader() {
			continue
		}
		info, ok := n.MetaFSM.DataGroupInfo(dg.ID)
		if !ok || len(info.Voters) == 0 {
			continue
		}
		if err := n.reconcileGroupServers(dg, info); err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrClosed) {
			n.log.Warn("reconcile data group voters", "raft_group", raftGroupID(dg.ID), "err", err)
		}
		n.kickReplication(ctx, dg.Group, groupName(dg.ID), dg.ID, info.Voters)
		if !dg.Group.IsLeader() {
			continue
		}
		pref := info.PreferredLeader()
		if pref == n.cfg.ID || !settled[pref] || !slices.Contains(info.Voters, pref) ||
			time.Since(n.rec.lastTransfer[dg.ID]) < transferBackoff {
			continue
		}
		pi, ok := n.MetaFSM.NodeInfo(pref)
		if !ok || pi.ClusterAddr == "" {
			continue
		}
		n.rec.lastTransfer[dg.ID] = time.Now()
		n.log.Info("handing leadership back to the preferred leader", "raft_group", raftGroupID(dg.ID), "to", pref)
		if err := dg.Group.TransferLeadership(ctx, pref, pi.ClusterAddr); err != nil {
			n.log.Info("leadership transfer failed; will retry", "raft_group", raftGroupID(dg.ID), "to", pref, "err", err)
		}
	}
}

// reconcileGroupServers makes a data group's raft configuration hold
// exactly the metadata's voters at their current addresses.
func (n *Node) reconcileGroupServers(dg *DataGroup, info DataGroupInfo) error {
	servers, err := dg.Group.Servers()
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range info.Voters {
		ni, ok := n.MetaFSM.NodeInfo(v)
		if !ok || ni.ClusterAddr == "" {
			continue
		}
		i := slices.IndexFunc(servers, func(s raft.Server) bool { return string(s.ID) == v })
		if i >= 0 && servers[i].Suffrage == raft.Voter && string(servers[i].Address) == ni.ClusterAddr {
			continue
		}
		n.log.Info("data group: adding voter", "raft_group", raftGroupID(dg.ID), "id", v, "addr", ni.ClusterAddr)
		errs = append(errs, dg.Group.AddVoter(v, ni.ClusterAddr))
	}
	for _, s := range servers {
		if !slices.Contains(info.Voters, string(s.ID)) {
			n.log.Info("data group: removing server", "raft_group", raftGroupID(dg.ID), "id", s.ID)
			errs = append(errs, dg.Group.RemoveServer(string(s.ID)))
		}
	}
	return errors.Join(errs...)
}

// publishLeads gossips the ids of the data groups this node leads, and
// their lagging voters (status.go), when either changed.
func (n *Node) publishLeads() {
	if n.members == nil {
		return
	}
	var ids []string
	var led []*DataGroup
	for _, dg := range n.DataGroups() {
		if dg.Group.IsLeader() {
			ids = append(ids, strconv.FormatUint(uint64(dg.ID), 10))
			led = append(led, dg)
		}
	}
	lead, lag := strings.Join(ids, ","), n.lagTag(led)
	if lead == n.rec.lead && lag == n.rec.lag {
		return
	}
	tags := n.baseTags()
	tags[tagLead] = lead
	if lag != "" {
		tags[tagLag] = lag
	}
	if err := n.members.SetTags(tags); err != nil {
		n.log.Warn("publish led groups", "err", err)
		return
	}
	n.rec.lead, n.rec.lag = lead, lag
}

// EnsureDataGroups makes sure groups of rf voters exist for the live nodes,
// creating them in the metadata when needed. It must run on the metadata
// leader. It returns the data groups after the change.
func (n *Node) EnsureDataGroups(ctx context.Context, rf int) ([]DataGroupInfo, error) {
	groups := n.MetaFSM.DataGroupInfos()
	alive := map[string]bool{}
	for _, m := range n.Members() {
		alive[m.ID] = m.Status == MemberStatusAlive
	}
	var live []string
	for _, info := range n.MetaFSM.NodeInfos() {
		if alive[info.ID] {
			live = append(live, info.ID)
		}
	}
	var next uint32
	for _, g := range groups {
		next = max(next, g.ID+1)
	}
	plan := PlanDataGroups(groups, live, rf, n.cfg.DataGroups, next)
	if len(plan) == 0 {
		return groups, nil
	}
	if _, err := n.Meta.Apply(ctx, SetDataGroupsCmd(plan)); err != nil {
		return nil, fmt.Errorf("cluster: create data groups: %w", err)
	}
	n.log.Info("created data groups", "count", len(plan), "rf", rf)
	n.Kick()
	return n.MetaFSM.DataGroupInfos(), nil
}
