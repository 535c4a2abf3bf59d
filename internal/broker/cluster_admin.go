package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
)

// NodeStatus is one node as this node sees it.
type NodeStatus struct {
	ID          string
	State       string // gossip status: alive, failed, left, leaving; "unknown" without gossip news
	GRPCAddr    string
	ClusterAddr string
	MetaRole    string
	PartitionsLed,
	PartitionsFollowed int
	GroupsLed []uint32
}

// GroupStatus is one data group as this node sees it.
type GroupStatus struct {
	ID         uint32
	Voters     []string
	Leader     string
	Preferred  string
	Partitions int
	Lagging    []string
}

// ClusterStatus is the cluster as this node sees it.
type ClusterStatus struct {
	MetadataLeader string
	AnsweredBy     string
	Nodes          []NodeStatus
	Groups         []GroupStatus
}

// ClusterStatus describes the nodes and data groups.
func (b *Broker) ClusterStatus() ClusterStatus {
	st := ClusterStatus{AnsweredBy: b.node.ID()}
	st.MetadataLeader, _ = b.node.Meta.Leader()
	state := map[string]string{}
	for _, m := range b.node.Members() {
		state[m.ID] = m.Status
	}
	alive := b.aliveSet()
	parts := map[uint32]int{}
	for _, t := range b.node.MetaFSM.Topics() {
		for _, a := range t.Partitions {
			parts[a.DataGroup]++
		}
	}
	byNode := map[string]*NodeStatus{}
	for _, info := range b.node.MetaFSM.NodeInfos() {
		s := state[info.ID]
		if s == "" {
			s = "unknown"
		}
		ns := NodeStatus{ID: info.ID, State: s, GRPCAddr: info.GRPCAddr, ClusterAddr: info.ClusterAddr,
			MetaRole: b.node.MetaRole(info.ID)}
		st.Nodes = append(st.Nodes, ns)
	}
	for i := range st.Nodes {
		byNode[st.Nodes[i].ID] = &st.Nodes[i]
	}
	for _, g := range b.node.MetaFSM.DataGroupInfos() {
		gs := GroupStatus{ID: g.ID, Voters: g.Voters, Leader: b.node.GroupLeader(g.ID),
			Preferred: g.PreferredLeader(), Partitions: parts[g.ID]}
		gs.Lagging = b.node.Lagging(g.ID, alive)
		for _, v := range g.Voters {
			ns := byNode[v]
			if ns == nil {
				continue
			}
			if v == gs.Leader {
				ns.PartitionsLed += gs.Partitions
				ns.GroupsLed = append(ns.GroupsLed, g.ID)
			} else {
				ns.PartitionsFollowed += gs.Partitions
			}
		}
		st.Groups = append(st.Groups, gs)
	}
	return st
}

// RemoveNode removes a node from the cluster (on the metadata leader): its
// replicas are re-placed on the other nodes.
func (b *Broker) RemoveNode(ctx context.Context, id string) error {
	if !b.node.Meta.IsLeader() {
		return b.notLeader(b.node.Meta, "metadata")
	}
	err := b.node.RemoveNode(ctx, id)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrInvalidConfig), errors.Is(err, cluster.ErrMemberAlive):
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	case errors.Is(err, cluster.ErrNotLeader):
		return b.notLeader(b.node.Meta, "metadata")
	}
	return err
}

// ReadOffsets returns a group's committed offsets as the metadata leader
// has them, after a barrier: every commit acknowledged before the call is
// in the answer. A follower's metadata may lag (a node that just restarted
// replays its log), so that offsets read there could seem to go back; a
// follower answers NotLeader with the leader's address instead.
func (b *Broker) ReadOffsets(ctx context.Context, group string, parts []TopicPartition) ([]topic.PartitionOffset, error) {
	if !b.node.Meta.IsLeader() {
		return nil, b.notLeader(b.node.Meta, "metadata")
	}
	if err := b.node.Meta.Barrier(ctx); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			return nil, b.notLeader(b.node.Meta, "metadata")
		}
		return nil, err
	}
	return b.FetchOffsets(group, parts), nil
}
