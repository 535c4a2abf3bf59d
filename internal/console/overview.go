package console

import (
	"github.com/stratalog/strata/internal/auth"
)

// Overview is the cluster at a glance.
type Overview struct {
	AnsweredBy      string         `json:"answered_by"`
	MetadataLeader  string         `json:"metadata_leader"`
	Nodes           []NodeView     `json:"nodes"`
	RaftGroups      []RaftGroup    `json:"raft_groups"`
	Topics          int            `json:"topics"`
	Partitions      int            `json:"partitions"`
	UnderReplicated []PartitionRef `json:"under_replicated"`
	Offline         []PartitionRef `json:"offline"`
}

// NodeView is one node as this node sees it.
type NodeView struct {
	ID                 string   `json:"id"`
	State              string   `json:"state"`
	GRPCAddr           string   `json:"grpc_addr"`
	ClusterAddr        string   `json:"cluster_addr"`
	MetaRole           string   `json:"meta_role"`
	PartitionsLed      int      `json:"partitions_led"`
	PartitionsFollowed int      `json:"partitions_followed"`
	GroupsLed          []uint32 `json:"groups_led"`
}

// RaftGroup is one data group: its voters, leader and lagging voters.
type RaftGroup struct {
	ID         uint32   `json:"id"`
	Voters     []string `json:"voters"`
	Leader     string   `json:"leader"`
	Preferred  string   `json:"preferred"`
	Partitions int      `json:"partitions"`
	Lagging    []string `json:"lagging"`
}

// PartitionRef is a partition named in the overview.
type PartitionRef struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Leader    string   `json:"leader"`
	Replicas  []string `json:"replicas"`
	InSync    []string `json:"in_sync"`
}

// overview describes the cluster; it needs describe on the cluster, and
// lists the partitions of the topics the caller may describe.
func (cl *call) overview() (Overview, error) {
	if err := cl.require(auth.OpDescribe, auth.ResourceCluster, clusterResource); err != nil {
		return Overview{}, err
	}
	st := cl.c.b.ClusterStatus()
	o := Overview{AnsweredBy: st.AnsweredBy, MetadataLeader: st.MetadataLeader, Nodes: []NodeView{}, RaftGroups: []RaftGroup{},
		UnderReplicated: []PartitionRef{}, Offline: []PartitionRef{}}
	for _, n := range st.Nodes {
		o.Nodes = append(o.Nodes, NodeView{ID: n.ID, State: n.State, GRPCAddr: n.GRPCAddr, ClusterAddr: n.ClusterAddr,
			MetaRole: n.MetaRole, PartitionsLed: n.PartitionsLed, PartitionsFollowed: n.PartitionsFollowed, GroupsLed: nonNil(n.GroupsLed)})
	}
	for _, g := range st.Groups {
		o.RaftGroups = append(o.RaftGroups, RaftGroup{ID: g.ID, Voters: g.Voters, Leader: g.Leader, Preferred: g.Preferred,
			Partitions: g.Partitions, Lagging: nonNil(g.Lagging)})
	}
	for _, t := range cl.c.b.Topics() {
		if !cl.allowed(auth.OpDescribe, auth.ResourceTopic, t.Name) {
			continue
		}
		tp, _, err := cl.loadTopic(t.Name)
		if err != nil {
			continue
		}
		o.Topics++
		for _, p := range tp.Partitions {
			o.Partitions++
			ref := PartitionRef{Topic: tp.Name, Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, InSync: nonNil(p.InSync)}
			switch {
			case p.Offline:
				o.Offline = append(o.Offline, ref)
			case p.UnderReplicated:
				o.UnderReplicated = append(o.UnderReplicated, ref)
			}
		}
	}
	return o, nil
}

func (c *Console) apiOverview(cl *call) (any, error) { return cl.overview() }

// WhoAmI is the caller as the console sees it.
type WhoAmI struct {
	Principal string `json:"principal"`
	Mechanism string `json:"mechanism"`
	Auth      bool   `json:"auth"`
	Node      string `json:"node"`
}

func (c *Console) apiWhoAmI(cl *call) (any, error) {
	return WhoAmI{Principal: cl.id.principal, Mechanism: cl.id.mechanism, Auth: c.authOn(), Node: c.b.NodeID()}, nil
}
