package server

import (
	"context"
	"maps"
	"slices"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/queue"
)

// The queue-group RPCs.

func fromQueueSettings(s *stratav1.QueueSettings) queue.Settings {
	if s == nil {
		return queue.Settings{}
	}
	return queue.Settings{AckTimeoutMs: s.AckTimeoutMs, MaxDeliveries: s.MaxDeliveries,
		BackoffInitialMs: s.BackoffInitialMs, BackoffMaxMs: s.BackoffMaxMs, MaxLeased: s.MaxLeasedPerPartition,
		DeadLetterTopic: s.DeadLetterTopic, Ordering: s.Ordering}
}

func toQueueSettings(s queue.Settings) *stratav1.QueueSettings {
	return &stratav1.QueueSettings{AckTimeoutMs: s.AckTimeoutMs, MaxDeliveries: s.MaxDeliveries,
		BackoffInitialMs: s.BackoffInitialMs, BackoffMaxMs: s.BackoffMaxMs, MaxLeasedPerPartition: s.MaxLeased,
		DeadLetterTopic: s.DeadLetterTopic, Ordering: s.Ordering}
}

// CreateQueueGroup implements strata.v1.
func (s *Server) CreateQueueGroup(ctx context.Context, req *stratav1.CreateQueueGroupRequest) (*stratav1.CreateQueueGroupResponse, error) {
	d, err := s.b.CreateQueueGroup(ctx, req.Topic, req.Group, fromQueueSettings(req.Settings))
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.CreateQueueGroupResponse{Settings: toQueueSettings(d.Settings)}, nil
}

// DescribeQueueGroup implements strata.v1. With led_only it describes
// only the partitions this node leads (what another node's describe asks
// it).
func (s *Server) DescribeQueueGroup(ctx context.Context, req *stratav1.DescribeQueueGroupRequest) (*stratav1.DescribeQueueGroupResponse, error) {
	describe := s.b.DescribeQueueGroup
	if req.LedOnly {
		describe = s.b.DescribeQueueGroupLed
	}
	d, err := describe(ctx, req.Topic, req.Group)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &stratav1.DescribeQueueGroupResponse{Topic: d.Def.Topic, Group: d.Def.Name, Settings: toQueueSettings(d.Def.Settings)}
	for _, p := range d.Partitions {
		resp.Partitions = append(resp.Partitions, &stratav1.QueuePartitionState{
			Partition: p.Partition, Floor: p.Floor, HighWatermark: p.HighWatermark, Backlog: p.Backlog,
			Available: p.Available, Leased: p.Leased, Acked: p.Acked, DeadLettered: p.DeadLetters,
			Deliveries: p.Deliveries, Redeliveries: p.Redeliveries, OldestUnackedSeconds: p.OldestUnacked.Seconds(),
			Unknown: p.Unknown,
		})
	}
	for _, m := range slices.Sorted(maps.Keys(d.Members)) {
		resp.Members = append(resp.Members, &stratav1.QueueMemberLeases{MemberId: m, Leased: d.Members[m]})
	}
	return resp, nil
}

// ListQueueGroups implements strata.v1.
func (s *Server) ListQueueGroups(ctx context.Context, req *stratav1.ListQueueGroupsRequest) (*stratav1.ListQueueGroupsResponse, error) {
	resp := &stratav1.ListQueueGroupsResponse{}
	for _, d := range s.b.QueueGroups() {
		if (req.Topic == "" || req.Topic == d.Topic) && s.canDescribe(ctx, auth.ResourceQueue, queueResource(d.Topic, d.Name)) {
			resp.Groups = append(resp.Groups, &stratav1.QueueGroupSummary{Topic: d.Topic, Group: d.Name})
		}
	}
	return resp, nil
}

// QueueReceive implements strata.v1.
func (s *Server) QueueReceive(ctx context.Context, req *stratav1.QueueReceiveRequest) (*stratav1.QueueReceiveResponse, error) {
	msgs, err := s.b.QueueReceive(ctx, broker.ReceiveRequest{Topic: req.Topic, Group: req.Group, Member: req.MemberId,
		Partition: req.Partition, AlsoLed: req.AlsoLed, Max: int(req.MaxMessages), Wait: time.Duration(req.MaxWaitMs) * time.Millisecond})
	if err != nil {
		return nil, toStatus(err)
	}
	return receiveResponse(msgs), nil
}

// receiveResponse converts leased messages for the wire with a fixed
// number of allocations, whatever the number of messages: the messages
// and their headers are carved out of one slice each, and the bytes alias
// the broker's.
func receiveResponse(msgs []broker.QueueMessage) *stratav1.QueueReceiveResponse {
	nh := 0
	for i := range msgs {
		nh += len(msgs[i].Headers)
	}
	qms := make([]stratav1.QueueMessage, len(msgs))
	ptrs := make([]*stratav1.QueueMessage, len(msgs))
	var hs []stratav1.RecordHeader
	var hptrs []*stratav1.RecordHeader
	if nh > 0 {
		hs, hptrs = make([]stratav1.RecordHeader, nh), make([]*stratav1.RecordHeader, nh)
	}
	for i := range msgs {
		m, qm := &msgs[i], &qms[i]
		qm.Partition, qm.Offset, qm.Key, qm.Value = m.Partition, m.Offset, m.Key, m.Value
		qm.TimestampMs, qm.Deliveries, qm.LeaseDeadlineMs = m.Timestamp.UnixMilli(), m.Deliveries, m.LeaseUntil.UnixMilli()
		qm.NullKey = m.Key == nil
		if n := len(m.Headers); n > 0 {
			qm.Headers, hptrs = hptrs[:n:n], hptrs[n:]
			for j, h := range m.Headers {
				hs[j].Key, hs[j].Value = h.Key, h.Value
				qm.Headers[j] = &hs[j]
			}
			hs = hs[n:]
		}
		ptrs[i] = qm
	}
	return &stratav1.QueueReceiveResponse{Messages: ptrs}
}

func settleReq(req *stratav1.QueueSettleRequest) broker.SettleRequest {
	offs := make(map[int32][]int64, len(req.Offsets))
	for _, po := range req.Offsets {
		offs[po.Partition] = append(offs[po.Partition], po.Offsets...)
	}
	return broker.SettleRequest{Topic: req.Topic, Group: req.Group, Member: req.MemberId, Offsets: offs,
		Delay: time.Duration(req.DelayMs) * time.Millisecond, Error: req.Error}
}

func settled(n int, err error) (*stratav1.QueueSettleResponse, error) {
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.QueueSettleResponse{Settled: int32(n)}, nil
}

// QueueAck implements strata.v1.
func (s *Server) QueueAck(ctx context.Context, req *stratav1.QueueSettleRequest) (*stratav1.QueueSettleResponse, error) {
	return settled(s.b.QueueAck(ctx, settleReq(req)))
}

// QueueNack implements strata.v1.
func (s *Server) QueueNack(ctx context.Context, req *stratav1.QueueSettleRequest) (*stratav1.QueueSettleResponse, error) {
	return settled(s.b.QueueNack(ctx, settleReq(req)))
}

// QueueReject implements strata.v1.
func (s *Server) QueueReject(ctx context.Context, req *stratav1.QueueSettleRequest) (*stratav1.QueueSettleResponse, error) {
	return settled(s.b.QueueReject(ctx, settleReq(req)))
}

// QueueExtend implements strata.v1.
func (s *Server) QueueExtend(ctx context.Context, req *stratav1.QueueSettleRequest) (*stratav1.QueueSettleResponse, error) {
	return settled(s.b.QueueExtend(ctx, settleReq(req)))
}

// RedriveQueueGroup implements strata.v1.
func (s *Server) RedriveQueueGroup(ctx context.Context, req *stratav1.RedriveQueueGroupRequest) (*stratav1.RedriveQueueGroupResponse, error) {
	if def, err := s.b.QueueGroup(ctx, req.Topic, req.Group); err == nil {
		if err := s.sec.require(ctx, "RedriveQueueGroup", auth.OpConsume, auth.ResourceTopic, def.Settings.DeadLetterTopic); err != nil {
			return nil, err
		}
	}
	n, err := s.b.RedriveQueueGroup(ctx, req.Topic, req.Group, req.Reason, int(req.MaxMessages), req.DeadLetterPartitions)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.RedriveQueueGroupResponse{Redriven: int32(n)}, nil
}

// ResetQueueGroup implements strata.v1.
func (s *Server) ResetQueueGroup(ctx context.Context, req *stratav1.ResetQueueGroupRequest) (*stratav1.ResetQueueGroupResponse, error) {
	spec, err := resetSpec(req)
	if err != nil {
		return nil, err
	}
	offs, err := s.b.ResetQueueGroup(ctx, req.Topic, req.Group, spec, req.Partitions)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.ResetQueueGroupResponse{Offsets: toPartitionOffsets(offs)}, nil
}

// resetRequest is the request for a reset to spec (resetSpec's inverse).
func resetRequest(topic, group string, spec broker.ResetSpec) *stratav1.ResetQueueGroupRequest {
	req := &stratav1.ResetQueueGroupRequest{Topic: topic, Group: group}
	switch spec.Spec {
	case broker.SpecEarliest:
		req.Spec = stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST
	case broker.SpecLatest:
		req.Spec = stratav1.OffsetSpec_OFFSET_SPEC_LATEST
	case broker.SpecTimestamp:
		req.Spec, req.TimestampMs = stratav1.OffsetSpec_OFFSET_SPEC_TIMESTAMP, spec.Timestamp
	default:
		req.Spec, req.Offset = stratav1.OffsetSpec_OFFSET_SPEC_OFFSET, spec.Offset
	}
	return req
}

// resetSpec reads the target of a queue group reset.
func resetSpec(req *stratav1.ResetQueueGroupRequest) (broker.ResetSpec, error) {
	var spec broker.ResetSpec
	switch req.Spec {
	case stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST:
		spec.Spec = broker.SpecEarliest
	case stratav1.OffsetSpec_OFFSET_SPEC_LATEST:
		spec.Spec = broker.SpecLatest
	case stratav1.OffsetSpec_OFFSET_SPEC_TIMESTAMP:
		spec = broker.ResetSpec{Spec: broker.SpecTimestamp, Timestamp: req.TimestampMs}
	case stratav1.OffsetSpec_OFFSET_SPEC_OFFSET:
		spec.Offset = req.Offset
	default:
		return spec, refuse(broker.ErrInvalidRequest, "reset queue group: unknown spec %v", req.Spec)
	}
	return spec, nil
}
