package console

import (
	"errors"
	"fmt"
	"slices"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// TopicConfig is a topic's configuration in the API.
type TopicConfig struct {
	Partitions        int32 `json:"partitions"`
	ReplicationFactor int32 `json:"replication_factor"`
	RetentionMs       int64 `json:"retention_ms"`
	RetentionBytes    int64 `json:"retention_bytes"`
	MaxBatchBytes     int32 `json:"max_batch_bytes"`
}

// Partition is one partition of a topic as its leader reports it.
type Partition struct {
	Partition       int32    `json:"partition"`
	Leader          string   `json:"leader"`
	Replicas        []string `json:"replicas"`
	InSync          []string `json:"in_sync"`
	Start           int64    `json:"start_offset"`
	End             int64    `json:"end_offset"`
	SizeBytes       int64    `json:"size_bytes"`
	RaftGroup       uint32   `json:"raft_group"`
	UnderReplicated bool     `json:"under_replicated"`
	Offline         bool     `json:"offline"`
	// Source says whose numbers these are: "leader", or "local" when the
	// leader could not be asked (the local replica's may lag).
	Source string `json:"source"`
}

// Topic is a topic in the API.
type Topic struct {
	Name            string      `json:"name"`
	Config          TopicConfig `json:"config"`
	Partitions      []Partition `json:"partitions"`
	Records         int64       `json:"records"`
	SizeBytes       int64       `json:"size_bytes"`
	UnderReplicated int         `json:"under_replicated"`
	Offline         int         `json:"offline"`
	Readers         *Readers    `json:"readers,omitempty"`
}

// loadTopic returns a topic with this node's view of its partitions, and
// the partition states (where each leader is).
func (cl *call) loadTopic(name string) (Topic, []partRef, error) {
	t, err := cl.c.b.Topic(cl.ctx, name)
	if err != nil {
		return Topic{}, nil, err
	}
	tp := Topic{Name: t.Name, Config: TopicConfig{Partitions: t.Config.Partitions, ReplicationFactor: t.Config.ReplicationFactor,
		RetentionMs: t.Config.RetentionMs, RetentionBytes: t.Config.RetentionBytes, MaxBatchBytes: t.Config.MaxBatchBytes}}
	var refs []partRef
	for _, ps := range cl.c.b.PartitionStates(t) {
		refs = append(refs, partRef{Topic: t.Name, PartitionState: ps})
		p := Partition{Partition: ps.Partition, Leader: ps.LeaderID, Replicas: ps.Replicas, InSync: ps.InSync,
			Start: ps.LogStartOffset, End: ps.HighWatermark, SizeBytes: ps.SizeBytes, RaftGroup: ps.DataGroup, Source: "local"}
		if p.Leader == cl.c.b.NodeID() {
			p.Source = "leader"
		}
		p.Offline = p.Leader == ""
		if p.Offline {
			p.InSync = nil
		}
		p.UnderReplicated = !p.Offline && len(p.InSync) < len(p.Replicas)
		tp.Partitions = append(tp.Partitions, p)
	}
	tp.sum()
	return tp, refs, nil
}

// fromLeaders replaces the offsets and sizes of the partitions that other
// nodes lead with what those leaders report: one call per leading node
// (DescribeTopic for one topic, ListTopics for more). A leader that cannot
// be asked leaves the local numbers, marked "local".
func (cl *call) fromLeaders(topics []Topic) {
	byNode := map[string]string{} // node id -> address
	for _, t := range topics {
		for _, p := range t.Partitions {
			if p.Source == "local" && p.Leader != "" {
				byNode[p.Leader] = ""
			}
		}
	}
	if len(byNode) == 0 {
		return
	}
	for _, n := range cl.c.b.Nodes() {
		if _, ok := byNode[n.ID]; ok {
			byNode[n.ID] = n.GRPCAddr
		}
	}
	for id, addr := range byNode {
		infos, err := cl.remoteTopics(addr, topics)
		if err != nil {
			cl.c.log.Debug("console: leader's view of topics", "node", id, "err", err)
			continue
		}
		for i := range topics {
			ti := infos[topics[i].Name]
			if ti == nil {
				continue
			}
			for j := range topics[i].Partitions {
				p := &topics[i].Partitions[j]
				if p.Leader != id || j >= len(ti.Partitions) || ti.Partitions[j].LeaderId != id {
					continue
				}
				pi := ti.Partitions[j]
				p.Start, p.End, p.SizeBytes, p.Source = pi.LogStartOffset, pi.HighWatermark, pi.SizeBytes, "leader"
			}
		}
	}
	for i := range topics {
		topics[i].sum()
	}
}

// remoteTopics asks the node at addr for its view of topics.
func (cl *call) remoteTopics(addr string, topics []Topic) (map[string]*stratav1.TopicInfo, error) {
	s, err := cl.stub(addr)
	if err != nil {
		return nil, err
	}
	out := map[string]*stratav1.TopicInfo{}
	if len(topics) == 1 {
		resp, err := s.DescribeTopic(cl.ctx, &stratav1.DescribeTopicRequest{Name: topics[0].Name})
		if err != nil {
			return nil, remoteErr(addr, err)
		}
		out[resp.Topic.GetName()] = resp.Topic
		return out, nil
	}
	resp, err := s.ListTopics(cl.ctx, &stratav1.ListTopicsRequest{})
	if err != nil {
		return nil, remoteErr(addr, err)
	}
	for _, ti := range resp.Topics {
		out[ti.GetName()] = ti
	}
	return out, nil
}

// sum fills a topic's totals from its partitions.
func (t *Topic) sum() {
	t.Records, t.SizeBytes, t.UnderReplicated, t.Offline = 0, 0, 0, 0
	for _, p := range t.Partitions {
		t.Records += max(p.End-p.Start, 0)
		t.SizeBytes += p.SizeBytes
		if p.UnderReplicated {
			t.UnderReplicated++
		}
		if p.Offline {
			t.Offline++
		}
	}
}

// visibleTopics returns the topics the caller may describe, with each
// partition's numbers from its leader.
func (cl *call) visibleTopics() ([]Topic, error) {
	var out []Topic
	for _, t := range cl.c.b.Topics() {
		if !cl.allowed(auth.OpDescribe, auth.ResourceTopic, t.Name) {
			continue
		}
		tp, _, err := cl.loadTopic(t.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, tp)
	}
	cl.fromLeaders(out)
	return out, nil
}

// topic returns one topic the caller may describe, with its readers.
func (cl *call) topic(name string) (Topic, error) {
	if err := cl.require(auth.OpDescribe, auth.ResourceTopic, name); err != nil {
		return Topic{}, err
	}
	tp, _, err := cl.loadTopic(name)
	if err != nil {
		return Topic{}, err
	}
	ts := []Topic{tp}
	cl.fromLeaders(ts)
	tp = ts[0]
	tp.sum()
	r := cl.readers(tp)
	tp.Readers = &r
	return tp, nil
}

func (c *Console) apiTopics(cl *call) (any, error) {
	ts, err := cl.visibleTopics()
	if err != nil {
		return nil, err
	}
	return struct {
		Topics []Topic `json:"topics"`
	}{Topics: nonNil(ts)}, nil
}

func (c *Console) apiTopic(cl *call) (any, error) { return cl.topic(cl.r.PathValue("topic")) }

// createTopicRequest is the body of POST /api/v1/topics; zero fields take
// the broker's defaults.
type createTopicRequest struct {
	Name string `json:"name"`
	TopicConfig
}

func (c *Console) apiCreateTopic(cl *call) (any, error) {
	var req createTopicRequest
	if err := cl.decode(&req); err != nil {
		return nil, err
	}
	if err := cl.require(auth.OpCreate, auth.ResourceTopic, req.Name); err != nil {
		return nil, err
	}
	// The broker's own config type, so that the console names no
	// metadata type; every field is set below (zero takes the default).
	cfg := c.b.TopicDefaults()
	cfg.Partitions, cfg.ReplicationFactor, cfg.MaxBatchBytes = req.Partitions, req.ReplicationFactor, req.MaxBatchBytes
	cfg.RetentionMs, cfg.RetentionBytes = req.RetentionMs, req.RetentionBytes
	_, err := c.b.CreateTopicAnywhere(cl.ctx, req.Name, cfg)
	if errors.Is(err, broker.ErrNotReady) {
		// Made through the metadata leader, not yet applied here: the
		// lookup below waits for it a moment.
		if t, terr := cl.topic(req.Name); terr == nil {
			cl.adminChange("create_topic", req.Name, nil)
			return t, nil
		}
	}
	cl.adminChange("create_topic", req.Name, err)
	if err != nil {
		return nil, err
	}
	return cl.topic(req.Name)
}

// confirmRequest is the body of a destructive action: Confirm must repeat
// the name of what is destroyed.
type confirmRequest struct {
	Confirm string `json:"confirm"`
}

func (c *Console) apiDeleteTopic(cl *call) (any, error) {
	name := cl.r.PathValue("topic")
	var req confirmRequest
	if err := cl.decode(&req); err != nil {
		return nil, err
	}
	if err := cl.require(auth.OpDelete, auth.ResourceTopic, name); err != nil {
		return nil, err
	}
	if req.Confirm != name {
		return nil, fmt.Errorf("%w: to delete topic %q, send {\"confirm\": %q}", ErrConfirm, name, name)
	}
	err := c.b.DeleteTopicAnywhere(cl.ctx, name)
	cl.adminChange("delete_topic", name, err)
	if err != nil {
		return nil, err
	}
	return struct {
		Deleted string `json:"deleted"`
	}{name}, nil
}

// nonNil returns s, or an empty slice for nil (a JSON [] rather than null).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
