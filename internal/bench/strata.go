package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
)

// Strata is a Target that drives Strata through the Go client. Every
// producer and consumer dials its own client (its own connection), as
// separate processes would.
type Strata struct {
	// ReplicationFactor is the replication factor of the topics
	// CreateStream makes; 0 leaves it to the cluster (min(3, nodes)).
	ReplicationFactor int32

	brokers []string
	cl      *client.Client
	admin   *client.Admin
}

// NewStrata connects to the brokers.
func NewStrata(ctx context.Context, brokers []string) (*Strata, error) {
	cl, err := client.Dial(ctx, brokers)
	if err != nil {
		return nil, err
	}
	return &Strata{brokers: brokers, cl: cl, admin: client.NewAdmin(cl)}, nil
}

// Name returns "strata".
func (s *Strata) Name() string { return "strata" }

// Close closes the admin connection.
func (s *Strata) Close() error { return errors.Join(s.admin.Close(), s.cl.Close()) }

// CreateStream creates the topic unless it exists, and waits until every
// partition has a leader and all its replicas in sync: on a cluster the
// partition's raft group may still be electing, and a run that started
// then would time the election.
func (s *Strata) CreateStream(ctx context.Context, topic string, partitions int) error {
	_, err := s.admin.CreateTopic(ctx, topic, client.TopicConfig{Partitions: int32(partitions),
		ReplicationFactor: s.ReplicationFactor})
	if err != nil && !errors.Is(err, client.ErrTopicExists) {
		return err
	}
	return s.waitLeaders(ctx, topic)
}

// leaderWait bounds how long CreateStream waits for the partitions'
// leaders; elections take a few heartbeat timeouts (500 ms by default).
const leaderWait = 30 * time.Second

// waitLeaders polls the topic's description until every partition has a
// leader and as many in-sync replicas as replicas.
func (s *Strata) waitLeaders(ctx context.Context, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := s.admin.DescribeTopic(ctx, topic)
		if err == nil {
			err = partitionsReady(info)
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %q not ready within %v: %w", topic, leaderWait, err)
		case <-tick.C:
		}
	}
}

// partitionsReady says which partition, if any, lacks a leader or an
// in-sync replica.
func partitionsReady(info client.TopicInfo) error {
	if len(info.Partitions) == 0 {
		return errors.New("no partitions described yet")
	}
	for _, p := range info.Partitions {
		switch {
		case p.LeaderAddr == "":
			return fmt.Errorf("partition %d has no leader", p.Partition)
		case len(p.InSync) < len(p.Replicas):
			return fmt.Errorf("partition %d: %d of %d replicas in sync", p.Partition, len(p.InSync), len(p.Replicas))
		}
	}
	return nil
}

// DeleteStream deletes the topic.
func (s *Strata) DeleteStream(ctx context.Context, topic string) error {
	return s.admin.DeleteTopic(ctx, topic)
}

// StoredRecords sums high watermark minus log start over the partitions.
func (s *Strata) StoredRecords(ctx context.Context, topic string) (int64, error) {
	info, err := s.admin.DescribeTopic(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range info.Partitions {
		n += p.HighWatermark - p.LogStartOffset
	}
	return n, nil
}

// NewProducer dials a client and opens an idempotent producer on it.
func (s *Strata) NewProducer(ctx context.Context, topic string, o ProducerOptions) (Producer, error) {
	cfg := client.DefaultProducerConfig()
	if o.LingerSet {
		cfg.Linger = o.Linger
	}
	if o.BatchBytes > 0 {
		cfg.BatchBytes = o.BatchBytes
	}
	if o.MaxPending > 0 {
		cfg.MaxBufferedRecords = o.MaxPending
	}
	if o.Compression != "" {
		c, err := record.ParseCompression(o.Compression)
		if err != nil {
			return nil, err
		}
		cfg.Compression = c
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cl, err := client.Dial(ctx, s.brokers)
	if err != nil {
		return nil, err
	}
	p, err := client.NewProducer(cl, cfg)
	if err != nil {
		cl.Close()
		return nil, err
	}
	if _, err := p.ProducerID(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("get a producer id: %w", err), p.Close(), cl.Close())
	}
	return &strataProducer{topic: topic, cl: cl, p: p}, nil
}

type strataProducer struct {
	topic string
	cl    *client.Client
	p     *client.Producer
	rec   client.Record // reused: ProduceAsync copies its fields before it returns
}

func (p *strataProducer) SendAsync(key, value []byte, done func(error)) {
	p.rec = client.Record{Topic: p.topic, Key: key, Value: value}
	p.p.ProduceAsync(&p.rec, func(_ client.Result, err error) { done(err) })
}

func (p *strataProducer) Send(ctx context.Context, key, value []byte) error {
	_, err := p.p.Produce(ctx, &client.Record{Topic: p.topic, Key: key, Value: value})
	return err
}

func (p *strataProducer) Flush(ctx context.Context) error { return p.p.Flush(ctx) }

func (p *strataProducer) Close() error { return errors.Join(p.p.Close(), p.cl.Close()) }

// NewConsumer dials a client and opens a consumer: a group member with
// o.Group, else a standalone consumer of every partition, from the start
// or (o.FromEnd) from each partition's high watermark as of now.
func (s *Strata) NewConsumer(ctx context.Context, topic string, o ConsumerOptions) (Consumer, error) {
	cl, err := client.Dial(ctx, s.brokers)
	if err != nil {
		return nil, err
	}
	cfg := client.DefaultConsumerConfig()
	if o.Group != "" {
		cfg.Group, cfg.Topics = o.Group, []string{topic}
		if o.FromEnd {
			cfg.StartAt = client.Latest
		}
	}
	co, err := client.NewConsumer(cl, cfg)
	if err != nil {
		cl.Close()
		return nil, err
	}
	sc := &strataConsumer{cl: cl, co: co}
	if o.Group == "" {
		if err := s.assign(ctx, co, topic, o.FromEnd); err != nil {
			return nil, errors.Join(err, sc.Close())
		}
	}
	return sc, nil
}

// assign gives a standalone consumer every partition of topic. From the
// end, it resolves each partition's high watermark now, so records written
// after NewConsumer returns are all read.
func (s *Strata) assign(ctx context.Context, co *client.Consumer, topic string, fromEnd bool) error {
	n, err := s.cl.PartitionCount(ctx, topic)
	if err != nil {
		return err
	}
	for p := 0; p < n; p++ {
		tp := client.TopicPartition{Topic: topic, Partition: int32(p)}
		at := client.AtStart()
		if fromEnd {
			hw, err := s.admin.ListOffsets(ctx, tp, client.AtEnd())
			if err != nil {
				return err
			}
			at = client.AtOffset(hw)
		}
		if err := co.Assign(at, tp); err != nil {
			return err
		}
	}
	return nil
}

type strataConsumer struct {
	cl *client.Client
	co *client.Consumer
}

func (c *strataConsumer) Receive(ctx context.Context, fn func([]byte)) (int, error) {
	f, err := c.co.Poll(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range f {
		for j := range f[i].Records {
			fn(f[i].Records[j].Value)
		}
		n += len(f[i].Records)
	}
	return n, nil
}

func (c *strataConsumer) Close() error { return errors.Join(c.co.Close(), c.cl.Close()) }

// strataQueueMax is the number of records one queue Receive asks for,
// as many as a NATS pull consumer keeps requested ahead in the comparison.
const strataQueueMax = 1000

// DefaultQueuePrefetch is the Prefetch of the queue workloads'
// members unless told otherwise (`strata bench queue --prefetch`,
// `benchcmp -queue-prefetch`): records leased ahead of the receive loop.
const DefaultQueuePrefetch = 4000

// NewQueueConsumer creates the queue group unless it exists (a new group
// starts at the first retained record) and joins it with a client of its
// own, prefetching opt.Prefetch records.
func (s *Strata) NewQueueConsumer(ctx context.Context, topic, group string, opt QueueOptions) (QueueConsumer, error) {
	if _, err := s.admin.CreateQueueGroup(ctx, topic, group, client.QueueSettings{}); err != nil {
		return nil, err
	}
	cl, err := client.Dial(ctx, s.brokers)
	if err != nil {
		return nil, err
	}
	q, err := client.NewQueueConsumer(cl, client.QueueConsumerConfig{Topic: topic, Group: group,
		MaxMessages: strataQueueMax, MaxWait: time.Second, Prefetch: opt.Prefetch})
	if err != nil {
		cl.Close()
		return nil, err
	}
	return &strataQueue{cl: cl, q: q}, nil
}

type strataQueue struct {
	cl *client.Client
	q  *client.QueueConsumer
}

// Receive leases up to strataQueueMax records, long-polling until at
// least one is there.
func (q *strataQueue) Receive(ctx context.Context) (QueueBatch, error) {
	for {
		msgs, err := q.q.Receive(ctx, 0, time.Second)
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 {
			return &strataQueueBatch{q: q.q, msgs: msgs}, nil
		}
	}
}

// Flush waits for the member's acks.
func (q *strataQueue) Flush(ctx context.Context) error { return q.q.Flush(ctx) }

func (q *strataQueue) Close() error { return errors.Join(q.q.Close(), q.cl.Close()) }

type strataQueueBatch struct {
	q    *client.QueueConsumer
	msgs []client.QueueMessage
}

func (b *strataQueueBatch) Len() int           { return len(b.msgs) }
func (b *strataQueueBatch) Value(i int) []byte { return b.msgs[i].Value }

// Ack acknowledges the whole batch with one AckAsync: the member receives
// its next batch while these acks commit; Flush waits for them.
func (b *strataQueueBatch) Ack(context.Context) error {
	b.q.AckAsync(b.msgs...)
	return nil
}
