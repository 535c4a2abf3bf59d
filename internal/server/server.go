package server

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// MaxRecvMsgBytes bounds a request: the largest batch a topic may accept
// (64 MiB) plus room for the envelope.
const MaxRecvMsgBytes = 64<<20 + 4096

// Server implements the strata.v1 service over a broker.
type Server struct {
	stratav1.UnimplementedStrataServer
	b      *broker.Broker
	health *health.Server
	sec    *Security // nil: no authentication (security_rpc.go)
}

// New returns the service. Register it with Register.
func New(b *broker.Broker) *Server {
	return &Server{b: b, health: health.NewServer()}
}

// Register registers the strata.v1 service, the standard health service
// and server reflection on g.
func (s *Server) Register(g *grpc.Server) {
	stratav1.RegisterStrataServer(g, s)
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
}

// SetServing reports the node as serving (or not) on the health service.
func (s *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(stratav1.Strata_ServiceDesc.ServiceName, st)
}

// Metadata implements strata.v1.
func (s *Server) Metadata(ctx context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	resp := &stratav1.MetadataResponse{}
	for _, n := range s.b.Nodes() {
		resp.Nodes = append(resp.Nodes, &stratav1.Node{Id: n.ID, GrpcAddr: n.GRPCAddr})
	}
	if len(req.Topics) == 0 {
		for _, t := range s.b.Topics() {
			if s.canDescribe(ctx, auth.ResourceTopic, t.Name) {
				resp.Topics = append(resp.Topics, s.topicInfo(t))
			}
		}
		return resp, nil
	}
	for _, name := range req.Topics {
		t, err := s.b.Topic(ctx, name)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Topics = append(resp.Topics, s.topicInfo(t))
	}
	return resp, nil
}

func (s *Server) topicInfo(t topic.Topic) *stratav1.TopicInfo {
	ti := &stratav1.TopicInfo{Name: t.Name, Config: &stratav1.TopicConfig{
		Partitions: t.Config.Partitions, ReplicationFactor: t.Config.ReplicationFactor,
		RetentionMs: t.Config.RetentionMs, RetentionBytes: t.Config.RetentionBytes,
		MaxBatchBytes: t.Config.MaxBatchBytes,
	}}
	for _, ps := range s.b.PartitionStates(t) {
		pi := &stratav1.PartitionInfo{
			Partition: ps.Partition, LeaderId: ps.LeaderID, LeaderAddr: ps.LeaderAddr,
			Replicas: ps.Replicas, LogStartOffset: ps.LogStartOffset, HighWatermark: ps.HighWatermark,
			SizeBytes: ps.SizeBytes, RaftGroup: ps.DataGroup,
		}
		if ps.LeaderID != "" {
			pi.InSync = ps.InSync
		}
		ti.Partitions = append(ti.Partitions, pi)
	}
	return ti
}

// CreateTopic implements strata.v1.
func (s *Server) CreateTopic(ctx context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	var cfg topic.Config
	if c := req.Config; c != nil {
		cfg = topic.Config{Partitions: c.Partitions, ReplicationFactor: c.ReplicationFactor,
			RetentionMs: c.RetentionMs, RetentionBytes: c.RetentionBytes, MaxBatchBytes: c.MaxBatchBytes}
	}
	t, err := s.b.CreateTopic(ctx, req.Name, cfg)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.CreateTopicResponse{Topic: s.topicInfo(t)}, nil
}

// DeleteTopic implements strata.v1.
func (s *Server) DeleteTopic(ctx context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	if err := s.b.DeleteTopic(ctx, req.Name); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.DeleteTopicResponse{}, nil
}

// ListTopics implements strata.v1.
func (s *Server) ListTopics(ctx context.Context, _ *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	resp := &stratav1.ListTopicsResponse{}
	for _, t := range s.b.Topics() {
		if s.canDescribe(ctx, auth.ResourceTopic, t.Name) {
			resp.Topics = append(resp.Topics, s.topicInfo(t))
		}
	}
	return resp, nil
}

// DescribeTopic implements strata.v1.
func (s *Server) DescribeTopic(ctx context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	t, err := s.b.Topic(ctx, req.Name)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.DescribeTopicResponse{Topic: s.topicInfo(t)}, nil
}

// InitProducer implements strata.v1.
func (s *Server) InitProducer(ctx context.Context, req *stratav1.InitProducerRequest) (*stratav1.InitProducerResponse, error) {
	id, epoch, err := s.b.InitProducer(ctx, req.ProducerId)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.InitProducerResponse{ProducerId: id, ProducerEpoch: int32(epoch)}, nil
}

// Produce implements strata.v1.
func (s *Server) Produce(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	r, err := s.b.Produce(ctx, req.Topic, req.Partition, req.Batch)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.ProduceResponse{CorrelationId: req.CorrelationId, Partition: req.Partition,
		BaseOffset: r.BaseOffset, Duplicate: r.Duplicate}, nil
}

// maxStreamInFlight bounds the produce requests of one stream being
// committed at once; past it the stream stops reading (back-pressure).
const maxStreamInFlight = 256

// ProduceStream implements strata.v1. Requests are committed concurrently
// (raft batches them into shared fsyncs), but the responses are sent in
// request order, so a pipelining producer sees its acknowledgements in
// order.
//
// The sender waits for each commit itself, in request order: the answers go
// out in that order anyway, so this delays none of them, and the commit
// wakes the goroutine that sends its answer instead of a goroutine per
// request that would then wake the sender (one hand-off less per request).
func (s *Server) ProduceStream(stream stratav1.Strata_ProduceStreamServer) error {
	ctx := stream.Context()
	type pending struct {
		req  *stratav1.ProduceRequest
		wait func() (broker.ProduceResult, error)
	}
	queue := make(chan pending, maxStreamInFlight)
	var sendErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the sender: answers in request order
		defer wg.Done()
		for p := range queue {
			r, err := p.wait()
			if sendErr != nil {
				continue // the stream is broken; let the reader end
			}
			resp := &stratav1.ProduceResponse{CorrelationId: p.req.CorrelationId, Partition: p.req.Partition,
				BaseOffset: r.BaseOffset, Duplicate: r.Duplicate}
			if err != nil {
				setProduceError(resp, err)
			}
			sendErr = stream.Send(resp)
		}
	}()
	var recvErr error
	for {
		req, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		// Hand the batch to raft here, in request order; wait in the sender.
		queue <- pending{req: req, wait: s.b.ProduceAsync(ctx, req.Topic, req.Partition, req.Batch)}
	}
	close(queue)
	wg.Wait()
	if recvErr != nil {
		return recvErr
	}
	return sendErr
}

// Fetch implements strata.v1.
func (s *Server) Fetch(ctx context.Context, req *stratav1.FetchRequest) (*stratav1.FetchResponse, error) {
	r, lease, err := s.b.FetchLeased(ctx, req.Topic, req.Partition, req.Offset, int(req.MaxBytes),
		time.Duration(req.MaxWaitMs)*time.Millisecond)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &stratav1.FetchResponse{Records: r.Records, HighWatermark: r.HighWatermark, LogStartOffset: r.LogStartOffset}
	keepLease(ctx, resp, lease) // see fetch_codec.go
	return resp, nil
}

// ListOffsets implements strata.v1.
func (s *Server) ListOffsets(ctx context.Context, req *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	var spec broker.OffsetSpec
	switch req.Spec {
	case stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST:
		spec = broker.SpecEarliest
	case stratav1.OffsetSpec_OFFSET_SPEC_LATEST:
		spec = broker.SpecLatest
	case stratav1.OffsetSpec_OFFSET_SPEC_TIMESTAMP:
		spec = broker.SpecTimestamp
	default:
		return nil, refuse(broker.ErrInvalidRequest, "list offsets: spec must be EARLIEST, LATEST or TIMESTAMP, got %v", req.Spec)
	}
	off, err := s.b.ListOffsets(ctx, req.Topic, req.Partition, spec, req.TimestampMs)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.ListOffsetsResponse{Offset: off}, nil
}

func toTPs(in []broker.TopicPartition) []*stratav1.TopicPartition {
	out := make([]*stratav1.TopicPartition, len(in))
	for i, tp := range in {
		out[i] = &stratav1.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}
	}
	return out
}

// JoinGroup implements strata.v1.
func (s *Server) JoinGroup(ctx context.Context, req *stratav1.JoinGroupRequest) (*stratav1.JoinGroupResponse, error) {
	m, err := s.b.JoinGroup(req.Group, req.MemberId, req.ClientId, req.Topics,
		time.Duration(req.SessionTimeoutMs)*time.Millisecond)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.JoinGroupResponse{MemberId: m.MemberID, Generation: m.Generation,
		Assignments: toTPs(m.Assignments), HeartbeatIntervalMs: int32(m.HeartbeatInterval / time.Millisecond)}, nil
}

// Heartbeat implements strata.v1.
func (s *Server) Heartbeat(ctx context.Context, req *stratav1.HeartbeatRequest) (*stratav1.HeartbeatResponse, error) {
	m, err := s.b.Heartbeat(req.Group, req.MemberId, req.Generation)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.HeartbeatResponse{Generation: m.Generation, Assignments: toTPs(m.Assignments)}, nil
}

// LeaveGroup implements strata.v1.
func (s *Server) LeaveGroup(ctx context.Context, req *stratav1.LeaveGroupRequest) (*stratav1.LeaveGroupResponse, error) {
	if err := s.b.LeaveGroup(req.Group, req.MemberId); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.LeaveGroupResponse{}, nil
}

// CommitOffsets implements strata.v1.
func (s *Server) CommitOffsets(ctx context.Context, req *stratav1.CommitOffsetsRequest) (*stratav1.CommitOffsetsResponse, error) {
	offs := make([]topic.PartitionOffset, len(req.Offsets))
	for i, o := range req.Offsets {
		offs[i] = topic.PartitionOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
	}
	if err := s.b.CommitOffsets(ctx, req.Group, req.MemberId, req.Generation, offs); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.CommitOffsetsResponse{}, nil
}

func toPartitionOffsets(in []topic.PartitionOffset) []*stratav1.PartitionOffset {
	out := make([]*stratav1.PartitionOffset, len(in))
	for i, o := range in {
		out[i] = &stratav1.PartitionOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
	}
	return out
}

// FetchOffsets implements strata.v1.
func (s *Server) FetchOffsets(ctx context.Context, req *stratav1.FetchOffsetsRequest) (*stratav1.FetchOffsetsResponse, error) {
	tps := make([]broker.TopicPartition, len(req.Partitions))
	for i, tp := range req.Partitions {
		tps[i] = broker.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}
	}
	offs, err := s.b.ReadOffsets(ctx, req.Group, tps)
	if err != nil {
		return nil, toStatus(err)
	}
	offs = slices.DeleteFunc(offs, func(o topic.PartitionOffset) bool { return !s.canDescribe(ctx, auth.ResourceTopic, o.Topic) })
	return &stratav1.FetchOffsetsResponse{Offsets: toPartitionOffsets(offs)}, nil
}

// ListGroups implements strata.v1.
func (s *Server) ListGroups(ctx context.Context, _ *stratav1.ListGroupsRequest) (*stratav1.ListGroupsResponse, error) {
	resp := &stratav1.ListGroupsResponse{}
	for _, g := range s.b.ListGroups() {
		if !s.canDescribe(ctx, auth.ResourceGroup, g.Name) {
			continue
		}
		resp.Groups = append(resp.Groups, &stratav1.GroupSummary{Group: g.Name, State: g.State, Members: int32(g.Members)})
	}
	return resp, nil
}

// DescribeGroup implements strata.v1. With led_partitions it measures
// only those of them this node leads (what another node's describe asks
// it).
func (s *Server) DescribeGroup(ctx context.Context, req *stratav1.DescribeGroupRequest) (*stratav1.DescribeGroupResponse, error) {
	if len(req.LedPartitions) > 0 {
		parts := make([]broker.PartitionLag, len(req.LedPartitions))
		for i, o := range req.LedPartitions {
			parts[i] = broker.PartitionLag{Topic: o.Topic, Partition: o.Partition, Committed: o.Offset}
		}
		return &stratav1.DescribeGroupResponse{Group: req.Group, Partitions: s.toGroupLags(ctx, s.b.LedPartitionLags(parts))}, nil
	}
	d, err := s.b.DescribeGroup(ctx, req.Group)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &stratav1.DescribeGroupResponse{Group: d.Name, State: d.State, Generation: d.Generation,
		Partitions: s.toGroupLags(ctx, d.Partitions)}
	for _, m := range d.Members {
		resp.Members = append(resp.Members, &stratav1.GroupMember{MemberId: m.ID, ClientId: m.ClientID, Assignments: toTPs(m.Assignments)})
	}
	return resp, nil
}

// toGroupLags converts lags for the wire, leaving out the topics the
// caller may not describe.
func (s *Server) toGroupLags(ctx context.Context, in []broker.PartitionLag) []*stratav1.GroupPartitionLag {
	var out []*stratav1.GroupPartitionLag
	for _, p := range in {
		if !s.canDescribe(ctx, auth.ResourceTopic, p.Topic) {
			continue
		}
		out = append(out, &stratav1.GroupPartitionLag{Topic: p.Topic, Partition: p.Partition,
			CommittedOffset: p.Committed, EndOffset: p.EndOffset, LagRecords: p.LagRecords, LagSeconds: p.LagSeconds,
			MemberId: p.MemberID, Unknown: p.Unknown})
	}
	return out
}

// ResetOffsets implements strata.v1.
func (s *Server) ResetOffsets(ctx context.Context, req *stratav1.ResetOffsetsRequest) (*stratav1.ResetOffsetsResponse, error) {
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
		return nil, refuse(broker.ErrInvalidRequest, "reset offsets: unknown spec %v", req.Spec)
	}
	offs, err := s.b.ResetOffsets(ctx, req.Group, req.Topic, req.Partitions, spec)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.ResetOffsetsResponse{Offsets: toPartitionOffsets(offs)}, nil
}
