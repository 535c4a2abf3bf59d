package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stratalog/strata/cluster"
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

// CreateTopic creates a topic: the metadata leader records it with its
// partitions placed in data groups, then each partition is created in its
// group. It returns once every partition can take writes.
func (b *Broker) CreateTopic(ctx context.Context, name string, cfg cluster.TopicConfig) (cluster.Topic, error) {
	if err := ValidName("topic", name); err != nil {
		return cluster.Topic{}, err
	}
	cfg, err := b.completeConfig(cfg)
	if err != nil {
		return cluster.Topic{}, err
	}
	if _, ok := b.node.MetaFSM.Topic(name); ok {
		return cluster.Topic{}, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	t := cluster.Topic{Name: name, Config: cfg, Partitions: b.place(cfg)}
	res, err := b.applyMeta(ctx, cluster.CreateTopicCmd(t))
	if err != nil {
		return cluster.Topic{}, mapClusterErr(err)
	}
	t = res.(cluster.Topic)
	for i, a := range t.Partitions {
		dg := b.node.DataGroup(a.DataGroup)
		if dg == nil {
			continue // another node holds it; its reconcile loop creates it
		}
		k := cluster.PartKey{TopicID: t.ID, Partition: int32(i)}
		if _, err := dg.Group.Apply(ctx, cluster.CreatePartitionCmd(t.Name, k, t.Config)); err != nil {
			return t, fmt.Errorf("broker: create partition %d of %q (the reconcile loop retries): %w", i, name, err)
		}
	}
	return t, nil
}

// completeConfig fills defaults and checks bounds.
func (b *Broker) completeConfig(cfg cluster.TopicConfig) (cluster.TopicConfig, error) {
	nodes := int32(len(b.Nodes()))
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

// place puts each partition in the data group holding the fewest
// partitions (ties to the lowest id), so partitions and their write load
// spread over the groups.
func (b *Broker) place(cfg cluster.TopicConfig) []cluster.Assignment {
	load := map[uint32]int{}
	var groups []cluster.DataGroupInfo
	b.node.MetaFSM.Read(func(s *cluster.MetaState) {
		for _, g := range s.DataGroups {
			groups = append(groups, cluster.DataGroupInfo{ID: g.ID, Voters: slices.Clone(g.Voters)})
		}
		for _, t := range s.Topics {
			for _, a := range t.Partitions {
				load[a.DataGroup]++
			}
		}
	})
	slices.SortFunc(groups, func(a, b cluster.DataGroupInfo) int { return int(a.ID) - int(b.ID) })
	out := make([]cluster.Assignment, cfg.Partitions)
	for i := range out {
		best := 0
		for j, g := range groups {
			if load[g.ID] < load[groups[best].ID] {
				best = j
			}
		}
		g := groups[best]
		load[g.ID]++
		out[i] = cluster.Assignment{DataGroup: g.ID, Replicas: g.Voters}
	}
	return out
}

// DeleteTopic deletes a topic, its partitions and data, and every group's
// offsets for it.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	t, ok := b.node.MetaFSM.Topic(name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
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

// Topic returns a topic.
func (b *Broker) Topic(name string) (cluster.Topic, error) {
	t, ok := b.node.MetaFSM.Topic(name)
	if !ok {
		return cluster.Topic{}, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	return t, nil
}

// Topics returns every topic, sorted by name.
func (b *Broker) Topics() []cluster.Topic { return b.node.MetaFSM.Topics() }

// PartitionState is a partition's place and progress as this node sees it.
type PartitionState struct {
	Partition      int32
	DataGroup      uint32
	LeaderID       string
	LeaderAddr     string
	Replicas       []string
	LogStartOffset int64
	HighWatermark  int64
	SizeBytes      int64
}

// PartitionStates describes each partition of a topic.
func (b *Broker) PartitionStates(t cluster.Topic) []PartitionState {
	out := make([]PartitionState, len(t.Partitions))
	for i, a := range t.Partitions {
		ps := PartitionState{Partition: int32(i), DataGroup: a.DataGroup, Replicas: a.Replicas}
		if dg := b.node.DataGroup(a.DataGroup); dg != nil {
			ps.LeaderID, _ = dg.Group.Leader()
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

// InitProducer allocates an idempotent producer id, or checks that a given
// one was allocated before (to resume it). The epoch is always 0: a resumed
// producer continues its sequences.
func (b *Broker) InitProducer(ctx context.Context, id int64) (int64, int16, error) {
	if id < 0 {
		return 0, 0, fmt.Errorf("%w: producer id %d", ErrUnknownProducer, id)
	}
	if id > 0 {
		var next int64
		b.node.MetaFSM.Read(func(s *cluster.MetaState) { next = s.NextProducerID })
		if id >= next {
			return 0, 0, fmt.Errorf("%w: %d was never allocated", ErrUnknownProducer, id)
		}
		return id, 0, nil
	}
	res, err := b.applyMeta(ctx, cluster.AllocProducerIDCmd())
	if err != nil {
		return 0, 0, mapClusterErr(err)
	}
	return res.(int64), 0, nil
}

// mapClusterErr turns the cluster package's errors into the broker's.
func mapClusterErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrTopicExists):
		return fmt.Errorf("%w: %w", ErrTopicExists, err)
	case errors.Is(err, cluster.ErrUnknownTopic):
		return fmt.Errorf("%w: %w", ErrUnknownTopic, err)
	case errors.Is(err, cluster.ErrUnknownPartition):
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return err
}
