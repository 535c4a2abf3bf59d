package client

import (
	"context"
	"fmt"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// QueueSettings are a queue group's settings; zero fields take the
// broker's defaults (ack timeout 30 s, max deliveries 5, backoff 1 s to
// 5 min, 10,000 leased per partition, dead-letter topic
// "<topic>.<group>.dlq", ordering "none").
type QueueSettings struct {
	AckTimeout            time.Duration
	MaxDeliveries         int32
	BackoffInitial        time.Duration
	BackoffMax            time.Duration
	MaxLeasedPerPartition int32
	DeadLetterTopic       string
	// Ordering is "none" or "key" (records of one key are never leased at
	// once and are leased in offset order).
	Ordering string
}

func (s QueueSettings) proto() *stratav1.QueueSettings {
	return &stratav1.QueueSettings{AckTimeoutMs: s.AckTimeout.Milliseconds(), MaxDeliveries: s.MaxDeliveries,
		BackoffInitialMs: s.BackoffInitial.Milliseconds(), BackoffMaxMs: s.BackoffMax.Milliseconds(),
		MaxLeasedPerPartition: s.MaxLeasedPerPartition, DeadLetterTopic: s.DeadLetterTopic, Ordering: s.Ordering}
}

func queueSettings(s *stratav1.QueueSettings) QueueSettings {
	return QueueSettings{AckTimeout: time.Duration(s.GetAckTimeoutMs()) * time.Millisecond, MaxDeliveries: s.GetMaxDeliveries(),
		BackoffInitial: time.Duration(s.GetBackoffInitialMs()) * time.Millisecond,
		BackoffMax:     time.Duration(s.GetBackoffMaxMs()) * time.Millisecond, MaxLeasedPerPartition: s.GetMaxLeasedPerPartition(),
		DeadLetterTopic: s.GetDeadLetterTopic(), Ordering: s.GetOrdering()}
}

// QueuePartitionState is a queue group's progress on one partition.
type QueuePartitionState struct {
	Partition     int32
	Floor         int64 // every offset below is acked or dead-lettered
	HighWatermark int64
	Backlog       int64 // records not yet acked or dead-lettered
	Available     int64
	Leased        int64
	Acked         uint64
	DeadLettered  uint64
	Deliveries    uint64
	Redeliveries  uint64
	OldestUnacked time.Duration
	// Unknown says the partition's leader could not be asked by the node
	// that answered: the signed numbers are -1 (OldestUnacked -1 s) and
	// the counters 0.
	Unknown bool
}

// QueueGroupDescription describes a queue group.
type QueueGroupDescription struct {
	Topic, Group string
	Settings     QueueSettings
	Partitions   []QueuePartitionState
	// Members maps member ids to the records they hold leased ("" for
	// leases a previous leader handed out).
	Members map[string]int64
}

// CreateQueueGroup creates a queue group on a topic, or updates its
// settings, and returns the settings in force.
func (a *Admin) CreateQueueGroup(ctx context.Context, topic, group string, s QueueSettings) (QueueSettings, error) {
	var resp *stratav1.CreateQueueGroupResponse
	err := a.call(ctx, ErrUnknownTopic, func(ctx context.Context, c stratav1.StrataClient) error {
		var err error
		resp, err = c.CreateQueueGroup(ctx, &stratav1.CreateQueueGroupRequest{Topic: topic, Group: group, Settings: s.proto()})
		return err
	})
	if err != nil {
		return QueueSettings{}, fmt.Errorf("client: create queue group %q on %q: %w", group, topic, err)
	}
	return queueSettings(resp.GetSettings()), nil
}

// QueueGroupRef names a queue group: its topic and its name.
type QueueGroupRef struct{ Topic, Group string }

// ListQueueGroups returns the queue groups of a topic, or of every topic
// when topic is empty.
func (a *Admin) ListQueueGroups(ctx context.Context, topic string) ([]QueueGroupRef, error) {
	var resp *stratav1.ListQueueGroupsResponse
	err := a.call(ctx, ErrUnknownTopic, func(ctx context.Context, c stratav1.StrataClient) error {
		var err error
		resp, err = c.ListQueueGroups(ctx, &stratav1.ListQueueGroupsRequest{Topic: topic})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: list queue groups: %w", err)
	}
	out := make([]QueueGroupRef, 0, len(resp.GetGroups()))
	for _, g := range resp.GetGroups() {
		out = append(out, QueueGroupRef{Topic: g.GetTopic(), Group: g.GetGroup()})
	}
	return out, nil
}

// DescribeQueueGroup returns a queue group's settings and progress.
func (a *Admin) DescribeQueueGroup(ctx context.Context, topic, group string) (QueueGroupDescription, error) {
	var resp *stratav1.DescribeQueueGroupResponse
	err := a.call(ctx, ErrUnknownQueueGroup, func(ctx context.Context, c stratav1.StrataClient) error {
		var err error
		resp, err = c.DescribeQueueGroup(ctx, &stratav1.DescribeQueueGroupRequest{Topic: topic, Group: group})
		return err
	})
	if err != nil {
		return QueueGroupDescription{}, fmt.Errorf("client: describe queue group %q on %q: %w", group, topic, err)
	}
	d := QueueGroupDescription{Topic: resp.GetTopic(), Group: resp.GetGroup(), Settings: queueSettings(resp.GetSettings()),
		Members: map[string]int64{}}
	for _, p := range resp.GetPartitions() {
		d.Partitions = append(d.Partitions, QueuePartitionState{Partition: p.GetPartition(), Floor: p.GetFloor(),
			HighWatermark: p.GetHighWatermark(), Backlog: p.GetBacklog(), Available: p.GetAvailable(), Leased: p.GetLeased(),
			Acked: p.GetAcked(), DeadLettered: p.GetDeadLettered(), Deliveries: p.GetDeliveries(), Redeliveries: p.GetRedeliveries(),
			OldestUnacked: time.Duration(p.GetOldestUnackedSeconds() * float64(time.Second)), Unknown: p.GetUnknown()})
	}
	for _, m := range resp.GetMembers() {
		d.Members[m.GetMemberId()] = m.GetLeased()
	}
	return d, nil
}

// Dead-letter reasons, for RedriveOptions.Reason.
const (
	ReasonMaxDeliveries = "max-deliveries"
	ReasonRejected      = "rejected"
)

// RedriveOptions select the dead letters a redrive moves.
type RedriveOptions struct {
	// Max is the most records to move; 0 moves all.
	Max int
	// Reason moves only the dead letters with this reason
	// (ReasonMaxDeliveries or ReasonRejected); empty moves all.
	Reason string
}

// RedriveQueueGroup moves the dead letters of a queue group that opt
// selects back to the partitions they came from, with a
// strata-redriven-from header; it returns how many it moved. A dead letter
// is moved once, whichever redrives (with or without a reason) reach it.
func (a *Admin) RedriveQueueGroup(ctx context.Context, topic, group string, opt RedriveOptions) (int, error) {
	var resp *stratav1.RedriveQueueGroupResponse
	err := a.call(ctx, ErrUnknownQueueGroup, func(ctx context.Context, c stratav1.StrataClient) error {
		var err error
		resp, err = c.RedriveQueueGroup(ctx, &stratav1.RedriveQueueGroupRequest{Topic: topic, Group: group, MaxMessages: int32(opt.Max), Reason: opt.Reason})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("client: redrive queue group %q on %q: %w", group, topic, err)
	}
	return int(resp.GetRedriven()), nil
}

// ResetQueueGroup moves a queue group to AtStart, AtEnd, AtOffset or
// AtTime on every partition: records from there on are delivered again.
func (a *Admin) ResetQueueGroup(ctx context.Context, topic, group string, to Offset) ([]PartitionOffset, error) {
	req := &stratav1.ResetQueueGroupRequest{Topic: topic, Group: group}
	var ok bool
	if req.Spec, req.Offset, req.TimestampMs, ok = resetSpec(to); !ok {
		return nil, fmt.Errorf("%w: reset queue group to %v", ErrInvalidArgument, to)
	}
	var resp *stratav1.ResetQueueGroupResponse
	err := a.call(ctx, ErrUnknownQueueGroup, func(ctx context.Context, c stratav1.StrataClient) error {
		var err error
		resp, err = c.ResetQueueGroup(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: reset queue group %q on %q: %w", group, topic, err)
	}
	return partitionOffsets(resp.GetOffsets()), nil
}
