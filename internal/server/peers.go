package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// Peers implements broker.Peers over the client API of the other nodes:
// one connection per address, kept until Close.
type Peers struct {
	dialOpts []grpc.DialOption // security (mutual TLS); none: plaintext

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

var _ broker.Peers = (*Peers)(nil)

// NewPeers returns a Peers with no connections yet; dialOpts (transport
// credentials) apply to every connection, plaintext without any.
func NewPeers(dialOpts ...grpc.DialOption) *Peers {
	return &Peers{dialOpts: dialOpts, conns: map[string]*grpc.ClientConn{}}
}

// Close closes every connection. It is idempotent.
func (p *Peers) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for addr, c := range p.conns {
		errs = append(errs, c.Close())
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}

// Stub returns a client of the node at addr over the pooled connection
// (opened on first use, with the node's identity), for callers that
// forward requests of their own, as the web console does.
func (p *Peers) Stub(addr string) (stratav1.StrataClient, error) { return p.stub(addr) }

func (p *Peers) stub(addr string) (stratav1.StrataClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%w: forward to %s: closing", broker.ErrNotReady, addr)
	}
	c := p.conns[addr]
	if c == nil {
		var err error
		opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRecvMsgBytes), grpc.MaxCallSendMsgSize(MaxRecvMsgBytes))},
			p.dialOpts...)
		c, err = grpc.NewClient(addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("server: dial %s: %w", addr, err)
		}
		p.conns[addr] = c
	}
	return stratav1.NewStrataClient(c), nil
}

// call runs fn on the node at addr and turns its answer's status back
// into a broker error.
func (p *Peers) call(ctx context.Context, addr string, fn func(stratav1.StrataClient) error) error {
	s, err := p.stub(addr)
	if err != nil {
		return err
	}
	return fromStatus(addr, fn(s))
}

// Produce implements broker.Peers.
func (p *Peers) Produce(ctx context.Context, addr, topic string, partition int32, batch []byte) (broker.ProduceResult, error) {
	var resp *stratav1.ProduceResponse
	err := p.call(ctx, addr, func(s stratav1.StrataClient) (err error) {
		resp, err = s.Produce(ctx, &stratav1.ProduceRequest{Topic: topic, Partition: partition, Batch: batch})
		return err
	})
	if err != nil {
		return broker.ProduceResult{BaseOffset: -1}, err
	}
	return broker.ProduceResult{BaseOffset: resp.BaseOffset, Duplicate: resp.Duplicate}, nil
}

// CreateTopic implements broker.Peers.
func (p *Peers) CreateTopic(ctx context.Context, addr, name string, cfg topic.Config) error {
	return p.call(ctx, addr, func(s stratav1.StrataClient) error {
		_, err := s.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: name, Config: &stratav1.TopicConfig{
			Partitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor, RetentionMs: cfg.RetentionMs,
			RetentionBytes: cfg.RetentionBytes, MaxBatchBytes: cfg.MaxBatchBytes}})
		return err
	})
}

// DeleteTopic implements broker.Peers.
func (p *Peers) DeleteTopic(ctx context.Context, addr, name string) error {
	return p.call(ctx, addr, func(s stratav1.StrataClient) error {
		_, err := s.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: name})
		return err
	})
}

// InitProducer implements broker.Peers.
func (p *Peers) InitProducer(ctx context.Context, addr string, id int64) (int64, int16, error) {
	var resp *stratav1.InitProducerResponse
	err := p.call(ctx, addr, func(s stratav1.StrataClient) (err error) {
		resp, err = s.InitProducer(ctx, &stratav1.InitProducerRequest{ProducerId: id})
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return resp.ProducerId, int16(resp.ProducerEpoch), nil
}

// CommitOffsets implements broker.Peers.
func (p *Peers) CommitOffsets(ctx context.Context, addr, group string, offs []topic.PartitionOffset) error {
	return p.call(ctx, addr, func(s stratav1.StrataClient) error {
		_, err := s.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: group, Offsets: toPartitionOffsets(offs)})
		return err
	})
}

// ResetQueuePartition implements broker.Peers.
func (p *Peers) ResetQueuePartition(ctx context.Context, addr, topic, group string, partition int32, spec broker.ResetSpec) (int64, error) {
	req := resetRequest(topic, group, spec)
	req.Partitions = []int32{partition}
	var resp *stratav1.ResetQueueGroupResponse
	err := p.call(ctx, addr, func(s stratav1.StrataClient) (err error) {
		resp, err = s.ResetQueueGroup(ctx, req)
		return err
	})
	if err != nil {
		return 0, err
	}
	if len(resp.Offsets) != 1 {
		return 0, fmt.Errorf("server: reset through %s answered %d partitions, want 1", addr, len(resp.Offsets))
	}
	return resp.Offsets[0].Offset, nil
}

// RedrivePartition implements broker.Peers.
func (p *Peers) RedrivePartition(ctx context.Context, addr, topic, group, reason string, dlqPartition int32, maxN int) (int, error) {
	var resp *stratav1.RedriveQueueGroupResponse
	err := p.call(ctx, addr, func(s stratav1.StrataClient) (err error) {
		resp, err = s.RedriveQueueGroup(ctx, &stratav1.RedriveQueueGroupRequest{Topic: topic, Group: group,
			MaxMessages: int32(min(maxN, 1<<31-1)), Reason: reason, DeadLetterPartitions: []int32{dlqPartition}})
		return err
	})
	if err != nil {
		return 0, err
	}
	return int(resp.Redriven), nil
}

// PartitionLags implements broker.Peers: DescribeGroup with
// led_partitions. A node older than that field answers the whole
// describe from its own replicas; the caller keeps the partitions it
// asked for.
func (p *Peers) PartitionLags(ctx context.Context, addr, group string, parts []broker.PartitionLag) ([]broker.PartitionLag, error) {
	req := &stratav1.DescribeGroupRequest{Group: group}
	for _, pl := range parts {
		req.LedPartitions = append(req.LedPartitions, &stratav1.PartitionOffset{Topic: pl.Topic, Partition: pl.Partition, Offset: pl.Committed})
	}
	var resp *stratav1.DescribeGroupResponse
	err := p.call(ctx, addr, func(s stratav1.StrataClient) (err error) {
		resp, err = s.DescribeGroup(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]broker.PartitionLag, len(resp.Partitions))
	for i, gl := range resp.Partitions {
		out[i] = broker.PartitionLag{Topic: gl.Topic, Partition: gl.Partition, Committed: gl.CommittedOffset,
			EndOffset: gl.EndOffset, LagRecords: gl.LagRecords, LagSeconds: gl.LagSeconds, Unknown: gl.Unknown}
	}
	return out, nil
}

// DescribeQueueLed implements broker.Peers: DescribeQueueGroup with
// led_only. A node older than that field answers for every partition it
// holds; the caller keeps those it asked that node for. Delayed is not on
// the wire: it stays 0.
func (p *Peers) DescribeQueueLed(ctx context.Context, addr, topic, group string) (broker.QueueDescription, error) {
	var resp *stratav1.DescribeQueueGroupResponse
	err := p.call(ctx, addr, func(s stratav1.StrataClient) (err error) {
		resp, err = s.DescribeQueueGroup(ctx, &stratav1.DescribeQueueGroupRequest{Topic: topic, Group: group, LedOnly: true})
		return err
	})
	if err != nil {
		return broker.QueueDescription{}, err
	}
	d := broker.QueueDescription{Members: map[string]int64{}}
	for _, qp := range resp.Partitions {
		d.Partitions = append(d.Partitions, broker.QueuePartition{Partition: qp.Partition, Floor: qp.Floor,
			HighWatermark: qp.HighWatermark, Backlog: qp.Backlog, Available: qp.Available, Leased: qp.Leased,
			Acked: qp.Acked, DeadLetters: qp.DeadLettered, Deliveries: qp.Deliveries, Redeliveries: qp.Redeliveries,
			OldestUnacked: time.Duration(qp.OldestUnackedSeconds * float64(time.Second)), Unknown: qp.Unknown})
	}
	for _, m := range resp.Members {
		d.Members[m.MemberId] += m.Leased
	}
	return d, nil
}

var _ broker.OffsetReader = (*Peers)(nil)

// ReadOffsets implements broker.OffsetReader: FetchOffsets on the node at
// addr answers from the metadata leader's view after a barrier.
func (p *Peers) ReadOffsets(ctx context.Context, addr, group string, parts []broker.TopicPartition) ([]topic.PartitionOffset, error) {
	req := &stratav1.FetchOffsetsRequest{Group: group}
	for _, tp := range parts {
		req.Partitions = append(req.Partitions, &stratav1.TopicPartition{Topic: tp.Topic, Partition: tp.Partition})
	}
	var resp *stratav1.FetchOffsetsResponse
	err := p.call(ctx, addr, func(s stratav1.StrataClient) (err error) {
		resp, err = s.FetchOffsets(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]topic.PartitionOffset, len(resp.Offsets))
	for i, o := range resp.Offsets {
		out[i] = topic.PartitionOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
	}
	return out, nil
}

// FromStatus turns an error of another node's gRPC service, reached at
// addr, back into the domain error it stood for (see fromStatus): for
// callers that forward through their own connections, as the web console
// does.
func FromStatus(addr string, err error) error { return fromStatus(addr, err) }

// fromStatus turns another node's answer back into the domain error it
// stood for, so callers match it with errors.Is/As as a local one: the
// ErrorInfo's reason picks the sentinel of errorTable (a forwarded unknown
// queue group stays one), the NotLeader and OutOfOrderSequence details
// give back the *broker.NotLeaderError and the *topic.SequenceError.
func fromStatus(addr string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var info *stratav1.ErrorInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *stratav1.NotLeader:
			return &broker.NotLeaderError{LeaderID: d.LeaderId, LeaderAddr: d.LeaderAddr, What: "forwarded request: " + st.Message()}
		case *stratav1.OutOfOrderSequence:
			return &topic.SequenceError{Expected: d.ExpectedSequence}
		case *stratav1.ErrorInfo:
			info = d
		}
	}
	kind := legacyKind(st)
	if info != nil {
		kind = reasonKinds[info.Reason].err // nil for UNSPECIFIED or a reason this node does not know
	}
	switch {
	case kind != nil:
	case st.Code() == codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	case st.Code() == codes.Canceled:
		kind = context.Canceled
	default:
		return fmt.Errorf("server: forwarded to %s: %w", addr, err)
	}
	return fmt.Errorf("%w: forwarded to %s: %s", kind, addr, st.Message())
}

// legacyKind is the domain error of a status from a node older than the
// ErrorReason (in a cluster being upgraded), which says no more than its
// code and message.
func legacyKind(st *status.Status) error {
	switch st.Code() {
	case codes.FailedPrecondition:
		// A dead-letter writer climbs to the epoch a partition is at.
		if strings.Contains(st.Message(), "producer epoch is stale") {
			return topic.ErrProducerFenced
		}
	case codes.AlreadyExists:
		return topic.ErrTopicExists
	case codes.NotFound:
		return topic.ErrUnknownTopic
	case codes.Unavailable:
		return broker.ErrNotReady
	case codes.InvalidArgument:
		return broker.ErrInvalidRequest
	case codes.ResourceExhausted:
		return broker.ErrBatchTooLarge
	}
	return nil
}
