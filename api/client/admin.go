package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// Admin manages topics and groups. Its methods are thin typed wrappers of
// the RPCs of the same names, with the client's routing and retries.
type Admin struct {
	c      *Client
	closed atomic.Bool
}

// NewAdmin returns an Admin using c.
func NewAdmin(c *Client) *Admin { return &Admin{c: c} }

// Close makes further calls fail with ErrClosed. It is idempotent and
// does not close the Client.
func (a *Admin) Close() error {
	a.closed.Store(true)
	return nil
}

// TopicConfig is a topic's configuration; zero fields take the broker's
// defaults when creating.
type TopicConfig struct {
	Partitions        int32
	ReplicationFactor int32
	// Retention is how long records are kept; 0 keeps them forever. It
	// travels in milliseconds.
	Retention time.Duration
	// RetentionBytes bounds each partition's size; 0 for no bound.
	RetentionBytes int64
	// MaxBatchBytes is the largest batch the topic accepts.
	MaxBatchBytes int32
}

// PartitionInfo describes one partition.
type PartitionInfo struct {
	Partition      int32
	LeaderID       string
	LeaderAddr     string
	Replicas       []string
	InSync         []string
	LogStartOffset int64
	HighWatermark  int64
	SizeBytes      int64
	RaftGroup      uint32
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name       string
	Config     TopicConfig
	Partitions []PartitionInfo
}

// GroupSummary is one group in ListGroups.
type GroupSummary struct {
	Group   string
	State   string // "stable" with members, "empty" without
	Members int32
}

// GroupMember is a live member of a group.
type GroupMember struct {
	MemberID    string
	ClientID    string
	Assignments []TopicPartition
}

// PartitionLag is a group's progress on one partition.
type PartitionLag struct {
	TopicPartition
	CommittedOffset int64 // -1 when nothing is committed
	EndOffset       int64
	LagRecords      int64
	// Lag is the age of the oldest unconsumed record.
	Lag      time.Duration
	MemberID string
	// Unknown says the partition's leader could not be asked by the node
	// that answered: EndOffset and LagRecords are -1, Lag is -1 s.
	Unknown bool
}

// GroupDescription describes a group.
type GroupDescription struct {
	Group      string
	State      string
	Generation int32
	Members    []GroupMember
	Partitions []PartitionLag
}

// PartitionOffset is an offset of one partition: for a group, the next
// offset to consume (-1 when nothing is committed).
type PartitionOffset struct {
	TopicPartition
	Offset int64
}

func (a *Admin) call(ctx context.Context, subject error, fn rpc) error {
	if a.closed.Load() {
		return ErrClosed
	}
	return a.c.callAny(ctx, subject, fn)
}

// CreateTopic creates a topic.
func (a *Admin) CreateTopic(ctx context.Context, name string, cfg TopicConfig) (TopicInfo, error) {
	var resp *stratav1.CreateTopicResponse
	err := a.call(ctx, nil, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: name, Config: topicConfigPB(cfg)})
		return err
	})
	a.c.invalidate(name)
	if err != nil {
		return TopicInfo{}, fmt.Errorf("client: create topic %q: %w", name, err)
	}
	return topicInfo(resp.GetTopic()), nil
}

// DeleteTopic deletes a topic and its records.
func (a *Admin) DeleteTopic(ctx context.Context, name string) error {
	err := a.call(ctx, ErrUnknownTopic, func(ctx context.Context, s stratav1.StrataClient) error {
		_, err := s.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: name})
		return err
	})
	a.c.invalidate(name)
	if err != nil {
		return fmt.Errorf("client: delete topic %q: %w", name, err)
	}
	return nil
}

// ListTopics lists every topic.
func (a *Admin) ListTopics(ctx context.Context) ([]TopicInfo, error) {
	var resp *stratav1.ListTopicsResponse
	err := a.call(ctx, nil, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.ListTopics(ctx, &stratav1.ListTopicsRequest{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: list topics: %w", err)
	}
	out := make([]TopicInfo, 0, len(resp.GetTopics()))
	for _, t := range resp.GetTopics() {
		out = append(out, topicInfo(t))
	}
	return out, nil
}

// DescribeTopic describes one topic, with its partitions' offsets.
func (a *Admin) DescribeTopic(ctx context.Context, name string) (TopicInfo, error) {
	var resp *stratav1.DescribeTopicResponse
	err := a.call(ctx, ErrUnknownTopic, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return TopicInfo{}, fmt.Errorf("client: describe topic %q: %w", name, err)
	}
	return topicInfo(resp.GetTopic()), nil
}

// ListGroups lists the stream groups.
func (a *Admin) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	var resp *stratav1.ListGroupsResponse
	err := a.call(ctx, nil, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.ListGroups(ctx, &stratav1.ListGroupsRequest{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: list groups: %w", err)
	}
	out := make([]GroupSummary, 0, len(resp.GetGroups()))
	for _, g := range resp.GetGroups() {
		out = append(out, GroupSummary{Group: g.GetGroup(), State: g.GetState(), Members: g.GetMembers()})
	}
	return out, nil
}

// DescribeGroup describes a group: members, assignments and lag.
func (a *Admin) DescribeGroup(ctx context.Context, group string) (GroupDescription, error) {
	var resp *stratav1.DescribeGroupResponse
	err := a.call(ctx, ErrUnknownGroup, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: group})
		return err
	})
	if err != nil {
		return GroupDescription{}, fmt.Errorf("client: describe group %q: %w", group, err)
	}
	d := GroupDescription{Group: resp.GetGroup(), State: resp.GetState(), Generation: resp.GetGeneration()}
	for _, m := range resp.GetMembers() {
		d.Members = append(d.Members, GroupMember{MemberID: m.GetMemberId(), ClientID: m.GetClientId(), Assignments: topicPartitions(m.GetAssignments())})
	}
	for _, p := range resp.GetPartitions() {
		d.Partitions = append(d.Partitions, PartitionLag{
			TopicPartition:  TopicPartition{p.GetTopic(), p.GetPartition()},
			CommittedOffset: p.GetCommittedOffset(), EndOffset: p.GetEndOffset(), LagRecords: p.GetLagRecords(),
			Lag: time.Duration(p.GetLagSeconds() * float64(time.Second)), MemberID: p.GetMemberId(), Unknown: p.GetUnknown(),
		})
	}
	return d, nil
}

// ResetOffsets moves a group's committed offsets for a topic (all its
// partitions, or the ones given) to AtStart, AtEnd, AtOffset or AtTime.
// The group must have no live members. It returns the new offsets.
func (a *Admin) ResetOffsets(ctx context.Context, group, topic string, to Offset, partitions ...int32) ([]PartitionOffset, error) {
	req := &stratav1.ResetOffsetsRequest{Group: group, Topic: topic, Partitions: partitions}
	var ok bool
	if req.Spec, req.Offset, req.TimestampMs, ok = resetSpec(to); !ok {
		return nil, fmt.Errorf("%w: reset offsets to %v", ErrInvalidArgument, to)
	}
	var resp *stratav1.ResetOffsetsResponse
	err := a.call(ctx, ErrUnknownTopic, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.ResetOffsets(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: reset offsets of group %q on %q: %w", group, topic, err)
	}
	return partitionOffsets(resp.GetOffsets()), nil
}

// resetSpec is the wire form of a reset target: AtStart, AtEnd, AtOffset
// or AtTime (ok is false for others, such as AtCommitted).
func resetSpec(to Offset) (spec stratav1.OffsetSpec, offset, tsMs int64, ok bool) {
	switch to.kind {
	case offsetStart:
		return stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST, 0, 0, true
	case offsetEnd:
		return stratav1.OffsetSpec_OFFSET_SPEC_LATEST, 0, 0, true
	case offsetExact:
		return stratav1.OffsetSpec_OFFSET_SPEC_OFFSET, to.offset, 0, true
	case offsetTime:
		return stratav1.OffsetSpec_OFFSET_SPEC_TIMESTAMP, 0, to.time.UnixMilli(), true
	}
	return 0, 0, 0, false
}

// FetchOffsets returns a group's committed offsets for the given
// partitions, or for every partition it committed when none are given.
func (a *Admin) FetchOffsets(ctx context.Context, group string, parts ...TopicPartition) ([]PartitionOffset, error) {
	req := &stratav1.FetchOffsetsRequest{Group: group}
	for _, tp := range parts {
		req.Partitions = append(req.Partitions, &stratav1.TopicPartition{Topic: tp.Topic, Partition: tp.Partition})
	}
	var resp *stratav1.FetchOffsetsResponse
	err := a.call(ctx, ErrUnknownGroup, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.FetchOffsets(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: fetch offsets of group %q: %w", group, err)
	}
	return partitionOffsets(resp.GetOffsets()), nil
}

// ListOffsets returns the offset at AtStart (the log start), AtEnd (the
// high watermark) or AtTime (the first record at or after the time, else
// the high watermark) of a partition.
func (a *Admin) ListOffsets(ctx context.Context, tp TopicPartition, at Offset) (int64, error) {
	if a.closed.Load() {
		return 0, ErrClosed
	}
	switch at.kind {
	case offsetStart:
		return a.c.listOffset(ctx, tp, stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST, 0)
	case offsetEnd:
		return a.c.listOffset(ctx, tp, stratav1.OffsetSpec_OFFSET_SPEC_LATEST, 0)
	case offsetTime:
		return a.c.listOffset(ctx, tp, stratav1.OffsetSpec_OFFSET_SPEC_TIMESTAMP, at.time.UnixMilli())
	}
	return 0, fmt.Errorf("%w: list offsets at %v", ErrInvalidArgument, at)
}

func topicConfigPB(c TopicConfig) *stratav1.TopicConfig {
	return &stratav1.TopicConfig{
		Partitions: c.Partitions, ReplicationFactor: c.ReplicationFactor,
		RetentionMs: c.Retention.Milliseconds(), RetentionBytes: c.RetentionBytes, MaxBatchBytes: c.MaxBatchBytes,
	}
}

func topicInfo(t *stratav1.TopicInfo) TopicInfo {
	c := t.GetConfig()
	info := TopicInfo{Name: t.GetName(), Config: TopicConfig{
		Partitions: c.GetPartitions(), ReplicationFactor: c.GetReplicationFactor(),
		Retention: time.Duration(c.GetRetentionMs()) * time.Millisecond, RetentionBytes: c.GetRetentionBytes(),
		MaxBatchBytes: c.GetMaxBatchBytes(),
	}}
	for _, p := range t.GetPartitions() {
		info.Partitions = append(info.Partitions, PartitionInfo{
			Partition: p.GetPartition(), LeaderID: p.GetLeaderId(), LeaderAddr: p.GetLeaderAddr(),
			Replicas: p.GetReplicas(), InSync: p.GetInSync(), LogStartOffset: p.GetLogStartOffset(),
			HighWatermark: p.GetHighWatermark(), SizeBytes: p.GetSizeBytes(), RaftGroup: p.GetRaftGroup(),
		})
	}
	return info
}

func topicPartitions(in []*stratav1.TopicPartition) []TopicPartition {
	out := make([]TopicPartition, 0, len(in))
	for _, tp := range in {
		out = append(out, TopicPartition{tp.GetTopic(), tp.GetPartition()})
	}
	return out
}

func partitionOffsets(in []*stratav1.PartitionOffset) []PartitionOffset {
	out := make([]PartitionOffset, 0, len(in))
	for _, o := range in {
		out = append(out, PartitionOffset{TopicPartition: TopicPartition{o.GetTopic(), o.GetPartition()}, Offset: o.GetOffset()})
	}
	return out
}
