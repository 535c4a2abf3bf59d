package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
)

// Topic limits.
const (
	maxNameLen       = 249
	maxPartitions    = 10000
	minMaxBatchBytes = 1024
	maxMaxBatchBytes = 64 << 20
)

// ValidName checks a topic or group name: 1 to 249 characters of
// [a-zA-Z0-9._-], and neither "." nor "..", as Kafka requires.
func ValidName(kind, name string) error {
	if name == "" || len(name) > maxNameLen || name == "." || name == ".." {
		return fmt.Errorf("%w: %s name %q must have 1 to %d characters", ErrInvalidName, kind, name, maxNameLen)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s name %q may hold only letters, digits, '.', '_' and '-'", ErrInvalidName, kind, name)
		}
	}
	return nil
}

// CreateTopic creates a topic on the metadata leader: it makes sure data
// groups of the topic's replication factor exist, places the partitions in
// them, records the topic, then waits (briefly) until the partitions it can
// see locally take writes; the data groups' leaders create the rest.
func (b *Broker) CreateTopic(ctx context.Context, name string, cfg topic.Config) (topic.Topic, error) {
	if err := ValidName("topic", name); err != nil {
		return topic.Topic{}, err
	}
	// The metadata leader decides: a follower's view of the nodes and
	// topics may lag (a node that just joined), so it validates nothing
	// that depends on them and names the leader instead.
	if !b.node.Meta.IsLeader() {
		return topic.Topic{}, b.notLeader(b.node.Meta, "metadata")
	}
	cfg, err := b.completeConfig(cfg)
	if err != nil {
		return topic.Topic{}, err
	}
	if _, ok := b.node.MetaFSM.Topic(name); ok {
		return topic.Topic{}, fmt.Errorf("%w: %q", topic.ErrTopicExists, name)
	}
	if err := b.checkPartitionCap(cfg.Partitions); err != nil {
		return topic.Topic{}, err
	}
	if err := b.disk.check(0); err != nil { // a partition's creation on a full disk panics the data FSM
		return topic.Topic{}, err
	}
	groups, err := b.node.EnsureDataGroups(ctx, int(cfg.ReplicationFactor))
	if err != nil {
		return topic.Topic{}, mapClusterErr(err)
	}
	t := topic.Topic{Name: name, Config: cfg, Partitions: b.place(groups, cfg)}
	if t.Partitions == nil {
		return topic.Topic{}, fmt.Errorf("%w: no data group has %d replicas (are %d nodes alive?)",
			ErrInvalidConfig, cfg.ReplicationFactor, cfg.ReplicationFactor)
	}
	res, err := b.applyMeta(ctx, cluster.CreateTopicCmd(t))
	if err != nil {
		return topic.Topic{}, mapClusterErr(err)
	}
	t = res.(topic.Topic)
	wctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	if err := b.waitPartitions(wctx, t); err != nil {
		b.log.Warn("topic created; some partitions are not ready yet (their leaders create them)", "topic", name, "err", err)
	}
	return t, nil
}

// topicReadyTimeout bounds how long CreateTopic waits for the partitions.
const topicReadyTimeout = 15 * time.Second

// waitPartitions waits until every partition of t that has a replica on
// this node exists in it, creating those whose group this node leads.
func (b *Broker) waitPartitions(ctx context.Context, t topic.Topic) error {
	self := b.node.ID()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(t.Partitions); {
		a := t.Partitions[i]
		k := cluster.PartKey{TopicID: t.ID, Partition: int32(i)}
		info, ok := b.node.MetaFSM.DataGroupInfo(a.DataGroup)
		if !ok || !slices.Contains(info.Voters, self) {
			i++
			continue
		}
		dg := b.node.DataGroup(a.DataGroup)
		switch {
		case dg != nil && dg.FSM.Partition(k) != nil:
			i++
			continue
		case dg != nil && dg.Group.IsLeader():
			if _, err := dg.Group.Apply(ctx, cluster.CreatePartitionCmd(t.Name, k, t.Config)); err == nil {
				i++
				continue
			} else if ctx.Err() != nil {
				return err
			}
		}
		b.node.Kick()
		select {
		case <-ctx.Done():
			return fmt.Errorf("partition %d: %w", i, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// completeConfig fills defaults and checks bounds.
func (b *Broker) completeConfig(cfg topic.Config) (topic.Config, error) {
	nodes := int32(b.aliveNodes())
	if cfg.Partitions == 0 {
		cfg.Partitions = b.cfg.DefaultPartitions
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = min(3, max(nodes, 1))
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = b.cfg.DefaultMaxBatchBytes
	}
	switch {
	case cfg.Partitions < 1 || cfg.Partitions > maxPartitions:
		return cfg, fmt.Errorf("%w: partitions %d not in [1, %d]", ErrInvalidConfig, cfg.Partitions, maxPartitions)
	case cfg.ReplicationFactor < 1:
		return cfg, fmt.Errorf("%w: replication factor %d < 1", ErrInvalidConfig, cfg.ReplicationFactor)
	case cfg.ReplicationFactor > max(nodes, 1):
		return cfg, fmt.Errorf("%w: replication factor %d exceeds the %d node(s) of the cluster", ErrInvalidConfig, cfg.ReplicationFactor, nodes)
	case cfg.RetentionMs < 0 || cfg.RetentionBytes < 0:
		return cfg, fmt.Errorf("%w: retention must not be negative", ErrInvalidConfig)
	case cfg.MaxBatchBytes < minMaxBatchBytes || cfg.MaxBatchBytes > maxMaxBatchBytes:
		return cfg, fmt.Errorf("%w: max batch bytes %d not in [%d, %d]", ErrInvalidConfig, cfg.MaxBatchBytes, minMaxBatchBytes, maxMaxBatchBytes)
	}
	return cfg, nil
}

// place puts each partition in a data group of the topic's replication
// factor, spreading partitions and their leaders (see cluster.PlacePartitions).
func (b *Broker) place(groups []cluster.DataGroupInfo, cfg topic.Config) []topic.Assignment {
	load := map[uint32]int{}
	for _, t := range b.node.MetaFSM.Topics() {
		for _, a := range t.Partitions {
			load[a.DataGroup]++
		}
	}
	return cluster.PlacePartitions(groups, load, int(cfg.ReplicationFactor), int(cfg.Partitions))
}

// DeleteTopic deletes a topic, its partitions and data, and every group's
// offsets for it. Only the metadata leader does: a follower names it,
// rather than answering from a view that may lag.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if !b.node.Meta.IsLeader() {
		return b.notLeader(b.node.Meta, "metadata")
	}
	t, err := b.knownTopic(name)
	if err != nil {
		return err
	}
	if _, err := b.applyMeta(ctx, cluster.DeleteTopicCmd(name)); err != nil {
		return mapClusterErr(err)
	}
	for i, a := range t.Partitions {
		if dg := b.node.DataGroup(a.DataGroup); dg != nil && dg.Group.IsLeader() {
			k := cluster.PartKey{TopicID: t.ID, Partition: int32(i)}
			if _, err := dg.Group.Apply(ctx, cluster.DeletePartitionCmd(k)); err != nil {
				b.log.Warn("delete partition (the reconcile loop retries)", "topic", name, "partition", i, "err", err)
			}
		}
	}
	return nil
}

// Topic returns a topic. A node that does not lead the metadata waits
// (lookupMeta) for a topic it does not know yet, which may have been
// created through another node a moment ago; after the wait an unknown
// topic is topic.ErrUnknownTopic with its name.
func (b *Broker) Topic(ctx context.Context, name string) (topic.Topic, error) {
	if ValidName("topic", name) != nil {
		return b.knownTopic(name) // no topic has that name: nothing to wait for
	}
	t, ok := lookupMeta(ctx, b, func() (topic.Topic, bool) { return b.node.MetaFSM.Topic(name) })
	if !ok {
		return topic.Topic{}, fmt.Errorf("%w: %q", topic.ErrUnknownTopic, name)
	}
	return t, nil
}

// knownTopic returns a topic as this node's metadata holds it now, without
// waiting: for background work, on the metadata leader (whose view is the
// reference), and for a topic named by metadata already applied here (a
// queue group's, a committed offset's).
func (b *Broker) knownTopic(name string) (topic.Topic, error) {
	t, ok := b.node.MetaFSM.Topic(name)
	if !ok {
		return topic.Topic{}, fmt.Errorf("%w: %q", topic.ErrUnknownTopic, name)
	}
	return t, nil
}

// Topics returns every topic, sorted by name.
func (b *Broker) Topics() []topic.Topic { return b.node.MetaFSM.Topics() }

// PartitionState is a partition's place and progress as this node sees it.
type PartitionState struct {
	Partition  int32
	DataGroup  uint32
	LeaderID   string
	LeaderAddr string
	Replicas   []string
	// InSync are the replicas that are alive, in the group's raft
	// configuration as this node knows it, and not lagging: caught up with
	// the leader's commit index within the lag timeout (Node.Lagging).
	InSync         []string
	LogStartOffset int64
	HighWatermark  int64
	SizeBytes      int64
}

// PartitionStates describes each partition of a topic.
func (b *Broker) PartitionStates(t topic.Topic) []PartitionState {
	out := make([]PartitionState, len(t.Partitions))
	alive := b.aliveSet()
	lagging := map[uint32][]string{} // by data group
	for i, a := range t.Partitions {
		ps := PartitionState{Partition: int32(i), DataGroup: a.DataGroup, Replicas: a.Replicas}
		if info, ok := b.node.MetaFSM.DataGroupInfo(a.DataGroup); ok {
			ps.Replicas = info.Voters
		}
		ps.LeaderID = b.node.GroupLeader(a.DataGroup)
		lag, ok := lagging[a.DataGroup]
		if !ok {
			lag = b.node.Lagging(a.DataGroup, alive)
			lagging[a.DataGroup] = lag
		}
		ps.InSync = b.inSync(a.DataGroup, ps.Replicas, alive, lag)
		if dg := b.node.DataGroup(a.DataGroup); dg != nil {
			if p := dg.FSM.Partition(cluster.PartKey{TopicID: t.ID, Partition: int32(i)}); p != nil {
				ps.LogStartOffset = p.Log.StartOffset()
				ps.HighWatermark = p.Log.HighWatermark()
				ps.SizeBytes = p.Log.Size()
			}
		}
		if ps.LeaderID != "" {
			b.node.MetaFSM.Read(func(s *cluster.MetaState) { ps.LeaderAddr = s.Nodes[ps.LeaderID].GRPCAddr })
		}
		out[i] = ps
	}
	return out
}

// inSync returns the replicas of a group that are alive, not lagging (see
// cluster.Node.Lagging) and, when this node holds the group, that its raft
// configuration has as voters.
func (b *Broker) inSync(gid uint32, replicas []string, alive map[string]bool, lagging []string) []string {
	var voters map[string]bool
	if dg := b.node.DataGroup(gid); dg != nil {
		if servers, err := dg.Group.Servers(); err == nil {
			voters = map[string]bool{}
			for _, s := range servers {
				voters[string(s.ID)] = s.Suffrage == raft.Voter
			}
		}
	}
	var out []string
	for _, r := range replicas {
		if alive[r] && !slices.Contains(lagging, r) && (voters == nil || voters[r]) {
			out = append(out, r)
		}
	}
	return out
}

// InitProducer allocates an idempotent producer id at epoch 0, or restarts
// a given one (to resume it) with its next epoch, through the metadata
// group: the instances holding an older epoch are fenced from then on (see
// fenced). An id whose epochs are spent comes back as a new id.
func (b *Broker) InitProducer(ctx context.Context, id int64) (int64, int16, error) {
	if id < 0 {
		return 0, 0, fmt.Errorf("%w: producer id %d", topic.ErrUnknownProducer, id)
	}
	if id > 0 {
		// A quick answer for a bad id; the metadata FSM checks again.
		if err := b.node.MetaFSM.CheckProducerID(id); err != nil {
			return 0, 0, mapClusterErr(err)
		}
	}
	res, err := b.applyMeta(ctx, cluster.InitProducerCmd(id))
	if err != nil {
		return 0, 0, mapClusterErr(err)
	}
	r := res.(cluster.ProducerInit)
	if id > 0 && r.ID != id {
		b.log.Warn("producer id has spent its epochs; gave a new id", "id", id, "new_id", r.ID)
	}
	return r.ID, r.Epoch, nil
}

// mapClusterErr turns the cluster package's errors into the broker's.
// The domain errors (package topic) pass unchanged: they are the same
// values in both.
func mapClusterErr(err error) error {
	if errors.Is(err, cluster.ErrUnknownPartition) {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return err
}
