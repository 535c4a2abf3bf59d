package cluster

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// NodeInfo is what the cluster knows of one node.
type NodeInfo struct {
	ID          string `json:"id"`
	GRPCAddr    string `json:"grpc_addr"`
	ClusterAddr string `json:"cluster_addr"`
	// GossipAddr is the node's serf address; empty for a node without
	// membership (a single node started without a gossip port).
	GossipAddr string `json:"gossip_addr,omitempty"`
	// KafkaAddr is the node's Kafka listener as clients reach it; empty
	// without one.
	KafkaAddr string `json:"kafka_addr,omitempty"`
	// Features are the features the node's version understood when it
	// registered, comma-separated (security_meta.go).
	Features string `json:"features,omitempty"`
}

// DataGroupInfo is a data raft group: its cluster-wide id, its voters (the
// replicas of every partition it holds) and its preferred leader.
type DataGroupInfo struct {
	ID     uint32   `json:"id"`
	Voters []string `json:"voters"`
	// Initial are the voters the group was created with: they, and only
	// they, bootstrap it (when they have no raft state for it). Empty for
	// groups recorded before it existed (bootstrapped as single voters).
	Initial []string `json:"initial,omitempty"`
	// Preferred is the node that should lead the group; its leader hands
	// leadership back to it when it is a healthy voter. Empty: Voters[0].
	Preferred string `json:"preferred,omitempty"`
}

// PreferredLeader returns the group's preferred leader.
func (g DataGroupInfo) PreferredLeader() string {
	if g.Preferred != "" {
		return g.Preferred
	}
	if len(g.Voters) > 0 {
		return g.Voters[0]
	}
	return ""
}

// Clone returns a deep copy.
func (g DataGroupInfo) Clone() DataGroupInfo {
	g.Voters = slices.Clone(g.Voters)
	g.Initial = slices.Clone(g.Initial)
	return g
}

// GroupOffsets are a consumer group's committed offsets: topic → partition →
// next offset to consume.
type GroupOffsets map[string]map[int32]int64

// MetaState is the whole replicated metadata. It is small: topics, nodes,
// data groups, producer ids and consumer-group offsets.
type MetaState struct {
	NextTopicID    uint64                    `json:"next_topic_id"`
	NextProducerID int64                     `json:"next_producer_id"`
	Topics         map[string]*topic.Topic   `json:"topics"`
	Nodes          map[string]NodeInfo       `json:"nodes"`
	DataGroups     map[uint32]*DataGroupInfo `json:"data_groups"`
	Groups         map[string]GroupOffsets   `json:"groups"`
	// Queues holds the queue groups, by "topic/name" (queue_meta.go).
	Queues map[string]*queue.Def `json:"queues,omitempty"`
	// ProducerEpochs is the current epoch of each producer id that was
	// restarted at least once (absent: 0). The map is never changed in
	// place: a restart replaces it (see MetaFSM.ProducerEpoch).
	ProducerEpochs map[int64]int16 `json:"producer_epochs,omitempty"`
	// Users and ACLs are the security store (security_meta.go);
	// SecurityVersion counts their changes.
	Users           map[string]*auth.User `json:"users,omitempty"`
	ACLs            []auth.ACL            `json:"acls,omitempty"`
	SecurityVersion uint64                `json:"security_version,omitempty"`
}

func newMetaState() *MetaState {
	return &MetaState{
		NextTopicID:    1,
		NextProducerID: 1,
		Topics:         map[string]*topic.Topic{},
		Nodes:          map[string]NodeInfo{},
		DataGroups:     map[uint32]*DataGroupInfo{},
		Groups:         map[string]GroupOffsets{},
		Queues:         map[string]*queue.Def{},
	}
}

// metaCmd is one metadata command. Metadata changes are rare, so JSON keeps
// them readable in the raft log.
type metaCmd struct {
	Op         string                  `json:"op"`
	Topic      *topic.Topic            `json:"topic,omitempty"`
	Name       string                  `json:"name,omitempty"`
	Node       *NodeInfo               `json:"node,omitempty"`
	DataGroups []DataGroupInfo         `json:"data_groups,omitempty"`
	Group      string                  `json:"group,omitempty"`
	Offsets    []topic.PartitionOffset `json:"offsets,omitempty"`
	Reset      bool                    `json:"reset,omitempty"`
	Queue      *queue.Def              `json:"queue,omitempty"`
	// ProducerID, in an alloc_producer_id command, restarts that producer
	// id with the next epoch instead of allocating one (see
	// InitProducerCmd). An older node ignores the field and allocates.
	ProducerID int64 `json:"producer_id,omitempty"`
	// User, Mode and ACL carry the security commands (security_meta.go).
	User *auth.User `json:"user,omitempty"`
	Mode string     `json:"mode,omitempty"`
	ACL  *auth.ACL  `json:"acl,omitempty"`
}

const (
	opCreateTopic     = "create_topic"
	opDeleteTopic     = "delete_topic"
	opRegisterNode    = "register_node"
	opSetDataGroups   = "set_data_groups"
	opAllocProducerID = "alloc_producer_id"
	opCommitOffsets   = "commit_offsets"
	opPutQueue        = "put_queue"
	opRemoveNode      = "remove_node"
	opPutUser         = "put_user"
	opDeleteUser      = "delete_user"
	opAddACL          = "add_acl"
	opRemoveACL       = "remove_acl"
)

// MetaFSM is the state machine of the metadata raft group.
type MetaFSM struct {
	mu       sync.RWMutex // guards state
	state    *MetaState
	onChange func() // called after every applied command, outside mu
	// epochs is state.ProducerEpochs, published for the produce path to
	// read without the lock.
	epochs atomic.Pointer[map[int64]int16]
	// secVersion is state.SecurityVersion, published likewise.
	secVersion atomic.Uint64
}

// NewMetaFSM returns an empty metadata state machine. onChange (may be nil)
// is called after each change, for the broker's reconcile loop.
func NewMetaFSM(onChange func()) *MetaFSM {
	return &MetaFSM{state: newMetaState(), onChange: onChange}
}

// Read calls fn with the current state under a read lock. fn must not keep
// references into the state nor call back into the FSM.
func (f *MetaFSM) Read(fn func(*MetaState)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Topic returns a copy of the named topic.
func (f *MetaFSM) Topic(name string) (topic.Topic, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.state.Topics[name]
	if !ok {
		return topic.Topic{}, false
	}
	return cloneTopic(t), true
}

// Topics returns copies of every topic, sorted by name.
func (f *MetaFSM) Topics() []topic.Topic {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]topic.Topic, 0, len(f.state.Topics))
	for _, t := range f.state.Topics {
		out = append(out, cloneTopic(t))
	}
	slices.SortFunc(out, func(a, b topic.Topic) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// CommittedOffset returns a group's committed offset for a partition, or -1.
func (f *MetaFSM) CommittedOffset(group, topic string, partition int32) int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if off, ok := f.state.Groups[group][topic][partition]; ok {
		return off
	}
	return -1
}

// GroupOffsets returns a copy of a group's committed offsets.
func (f *MetaFSM) GroupOffsets(group string) GroupOffsets {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := GroupOffsets{}
	for t, parts := range f.state.Groups[group] {
		out[t] = maps.Clone(parts)
	}
	return out
}

// DataGroupInfos returns copies of every data group, sorted by id.
func (f *MetaFSM) DataGroupInfos() []DataGroupInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]DataGroupInfo, 0, len(f.state.DataGroups))
	for _, g := range f.state.DataGroups {
		out = append(out, g.Clone())
	}
	slices.SortFunc(out, func(a, b DataGroupInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// DataGroupInfo returns a copy of one data group.
func (f *MetaFSM) DataGroupInfo(id uint32) (DataGroupInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.state.DataGroups[id]
	if !ok {
		return DataGroupInfo{}, false
	}
	return g.Clone(), true
}

// NodeInfos returns every node the metadata knows, sorted by id.
func (f *MetaFSM) NodeInfos() []NodeInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]NodeInfo, 0, len(f.state.Nodes))
	for _, n := range f.state.Nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// NodeInfo returns what the metadata knows of one node.
func (f *MetaFSM) NodeInfo(id string) (NodeInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.state.Nodes[id]
	return n, ok
}

// GroupNames returns the names of groups with committed offsets.
func (f *MetaFSM) GroupNames() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Sorted(maps.Keys(f.state.Groups))
}

func cloneTopic(t *topic.Topic) topic.Topic {
	c := *t
	c.Partitions = make([]topic.Assignment, len(t.Partitions))
	for i, a := range t.Partitions {
		c.Partitions[i] = topic.Assignment{DataGroup: a.DataGroup, Replicas: slices.Clone(a.Replicas)}
	}
	return c
}

// Apply implements raft.FSM. It returns an error value for a command that
// is refused (deterministically, on every replica alike) and panics on a
// command it cannot decode: replicas that diverge are worse than a crash.
func (f *MetaFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var c metaCmd
	if err := json.Unmarshal(l.Data, &c); err != nil {
		panic(fmt.Sprintf("cluster: undecodable metadata command at index %d: %v", l.Index, err))
	}
	f.mu.Lock()
	res := f.applyLocked(&c)
	f.mu.Unlock()
	if f.onChange != nil {
		f.onChange()
	}
	return res
}

// applyLocked applies one command. Caller must hold f.mu.
func (f *MetaFSM) applyLocked(c *metaCmd) any {
	s := f.state
	switch c.Op {
	case opCreateTopic:
		if _, ok := s.Topics[c.Topic.Name]; ok {
			return fmt.Errorf("%w: %q", topic.ErrTopicExists, c.Topic.Name)
		}
		t := cloneTopic(c.Topic)
		t.ID = s.NextTopicID
		s.NextTopicID++
		s.Topics[t.Name] = &t
		return cloneTopic(&t)
	case opDeleteTopic:
		if _, ok := s.Topics[c.Name]; !ok {
			return fmt.Errorf("%w: %q", topic.ErrUnknownTopic, c.Name)
		}
		delete(s.Topics, c.Name)
		for _, g := range s.Groups {
			delete(g, c.Name)
		}
		f.deleteTopicQueuesLocked(c.Name)
		return nil
	case opRegisterNode:
		s.Nodes[c.Node.ID] = *c.Node
		return nil
	case opSetDataGroups:
		for _, g := range c.DataGroups {
			cg := g.Clone()
			s.DataGroups[g.ID] = &cg
		}
		return nil
	case opRemoveNode:
		// The data groups' new voters come with the command (placed by the
		// metadata leader); the node itself is forgotten.
		delete(s.Nodes, c.Name)
		for _, g := range c.DataGroups {
			cg := g.Clone()
			s.DataGroups[g.ID] = &cg
		}
		return nil
	case opAllocProducerID:
		return f.initProducerLocked(c.ProducerID)
	case opCommitOffsets:
		return f.commitLocked(c)
	case opPutQueue:
		return f.applyQueueLocked(c)
	case opPutUser, opDeleteUser, opAddACL, opRemoveACL:
		return f.applySecurityLocked(c)
	default:
		panic(fmt.Sprintf("cluster: unknown metadata command %q", c.Op))
	}
}

// commitLocked stores offsets. A commit never moves an offset backwards; a
// reset (c.Reset) sets it as given. Caller must hold f.mu.
func (f *MetaFSM) commitLocked(c *metaCmd) any {
	g := f.state.Groups[c.Group]
	if g == nil {
		g = GroupOffsets{}
		f.state.Groups[c.Group] = g
	}
	for _, o := range c.Offsets {
		if _, ok := f.state.Topics[o.Topic]; !ok {
			continue // the topic was deleted meanwhile: nothing to keep
		}
		parts := g[o.Topic]
		if parts == nil {
			parts = map[int32]int64{}
			g[o.Topic] = parts
		}
		if old, ok := parts[o.Partition]; ok && o.Offset < old && !c.Reset {
			continue
		}
		parts[o.Partition] = o.Offset
	}
	return nil
}

// Snapshot implements raft.FSM: the metadata is small, so the snapshot is a
// copy of all of it.
func (f *MetaFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.state)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode metadata snapshot: %w", err)
	}
	return &bytesSnapshot{b: b}, nil
}

// Restore implements raft.FSM.
func (f *MetaFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s := newMetaState()
	if err := json.NewDecoder(rc).Decode(s); err != nil {
		return fmt.Errorf("cluster: decode metadata snapshot: %w", err)
	}
	f.mu.Lock()
	f.state = s
	epochs := s.ProducerEpochs // a copy of the reference: the field changes, the map does not
	f.epochs.Store(&epochs)
	f.secVersion.Store(s.SecurityVersion)
	f.mu.Unlock()
	if f.onChange != nil {
		f.onChange()
	}
	return nil
}

type bytesSnapshot struct{ b []byte }

func (s *bytesSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.b); err != nil {
		return errors.Join(err, sink.Cancel())
	}
	return sink.Close()
}

func (s *bytesSnapshot) Release() {}

// Metadata commands, encoded for Group.Apply.

// CreateTopicCmd encodes a topic creation; the FSM assigns the ID.
func CreateTopicCmd(t topic.Topic) []byte { return mustJSON(metaCmd{Op: opCreateTopic, Topic: &t}) }

// DeleteTopicCmd encodes a topic deletion.
func DeleteTopicCmd(name string) []byte { return mustJSON(metaCmd{Op: opDeleteTopic, Name: name}) }

// RegisterNodeCmd records a node's addresses.
func RegisterNodeCmd(n NodeInfo) []byte { return mustJSON(metaCmd{Op: opRegisterNode, Node: &n}) }

// SetDataGroupsCmd records data groups and their voters.
func SetDataGroupsCmd(gs []DataGroupInfo) []byte {
	return mustJSON(metaCmd{Op: opSetDataGroups, DataGroups: gs})
}

// RemoveNodeCmd forgets a node and records the data groups whose voters
// changed because of it.
func RemoveNodeCmd(id string, changed []DataGroupInfo) []byte {
	return mustJSON(metaCmd{Op: opRemoveNode, Name: id, DataGroups: changed})
}

// AllocProducerIDCmd allocates a fresh idempotent-producer id; the
// result is a ProducerInit with epoch 0.
func AllocProducerIDCmd() []byte { return InitProducerCmd(0) }

// InitProducerCmd restarts producer id with its next epoch, which fences
// the instances that hold an older one; id 0 allocates a new id. The
// result is a ProducerInit.
//
// It is an alloc_producer_id command with the id added, not a new
// command, for rolling upgrades: an older node panics on an unknown
// command, but ignores the unknown field and allocates an id. So that
// both agree on NextProducerID, a restart consumes a fresh id too (ids are
// plentiful); an older node just keeps no epochs.
func InitProducerCmd(id int64) []byte {
	return mustJSON(metaCmd{Op: opAllocProducerID, ProducerID: id})
}

// ProducerInit is the result of InitProducerCmd: the id to write with
// (the one asked for, or a new one) and its epoch.
type ProducerInit struct {
	ID    int64
	Epoch int16
}

// initProducerLocked applies InitProducerCmd. The id a restart asks for
// was checked by the broker; it is checked again here so that a bad one
// is refused the same way on every replica. An id whose epoch reached
// math.MaxInt16 is not restarted: the producer gets the fresh id, at
// epoch 0, as Kafka does. Caller must hold f.mu.
func (f *MetaFSM) initProducerLocked(id int64) any {
	s := f.state
	fresh := s.NextProducerID
	s.NextProducerID++
	if id == 0 {
		return ProducerInit{ID: fresh}
	}
	if err := checkProducerIDLocked(s, id, fresh); err != nil {
		return err
	}
	cur := s.ProducerEpochs[id]
	if cur == math.MaxInt16 {
		return ProducerInit{ID: fresh}
	}
	epochs := make(map[int64]int16, len(s.ProducerEpochs)+1)
	maps.Copy(epochs, s.ProducerEpochs)
	epochs[id] = cur + 1
	s.ProducerEpochs = epochs
	f.epochs.Store(&epochs)
	return ProducerInit{ID: id, Epoch: cur + 1}
}

// checkProducerIDLocked refuses to restart an id that was never allocated
// (below next) or that a queue group's dead letters are written with:
// fencing those would stop the dead-lettering.
func checkProducerIDLocked(s *MetaState, id, next int64) error {
	if id <= 0 || id >= next {
		return fmt.Errorf("%w: %d was never allocated", topic.ErrUnknownProducer, id)
	}
	for _, q := range s.Queues {
		if t, ok := s.Topics[q.Topic]; ok && id >= q.ProducerIDBase && id < q.ProducerIDBase+int64(len(t.Partitions)) {
			return fmt.Errorf("%w: %d writes the dead letters of queue group %q of %q", topic.ErrUnknownProducer, id, q.Name, q.Topic)
		}
	}
	return nil
}

// CheckProducerID returns the error InitProducerCmd would give id, if
// any, from this node's state (which may lag the leader's).
func (f *MetaFSM) CheckProducerID(id int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return checkProducerIDLocked(f.state, id, f.state.NextProducerID)
}

// ProducerEpoch returns the current epoch of a producer id as this node's
// metadata knows it (0 for an id never restarted). The produce path calls
// it for every batch, so it takes no lock and allocates nothing.
func (f *MetaFSM) ProducerEpoch(id int64) int16 {
	m := f.epochs.Load()
	if m == nil {
		return 0
	}
	return (*m)[id]
}

// CommitOffsetsCmd commits a group's offsets; with reset they may move back.
func CommitOffsetsCmd(group string, offs []topic.PartitionOffset, reset bool) []byte {
	return mustJSON(metaCmd{Op: opCommitOffsets, Group: group, Offsets: offs, Reset: reset})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cluster: encode command: %v", err))
	}
	return b
}
