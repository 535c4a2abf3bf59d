package benchcmp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratalog/strata/internal/bench"
)

// natsMaxPending is the window of asynchronous publishes awaiting their
// acknowledgement per producer, unless ProducerOptions.MaxPending says
// otherwise.
const natsMaxPending = 8192

// natsPullBatch is how many messages a pull consumer asks for at a time.
const natsPullBatch = 1000

// NATS is a bench.Target (and bench.QueueTarget) that drives NATS JetStream
// through nats.go: one stream per Strata topic (subject = stream name),
// file storage, one replica (or replicas on a cluster); asynchronous
// publish; pull consumers.
type NATS struct {
	name string
	url  string // one server's URL, or a cluster's, comma-separated
	ack  jetstream.AckPolicy
	// maxPending overrides natsMaxPending when > 0.
	maxPending int
	// replicas is the streams' replica count (R3 on a cluster); 0 means 1.
	replicas int
	// serverURLs maps a cluster's server names to their client URLs, so
	// that a producer connects to the server leading its stream first, as
	// Strata's client sends to its partition's leader: neither side pays
	// for an extra hop.
	serverURLs map[string]string
	nc         *nats.Conn
	js         jetstream.JetStream
}

// NewNATS connects to a NATS server. name labels its results; ack is the
// ack policy of the consumers NewConsumer makes (explicit acks: every
// message acked; none: a replay without acks).
func NewNATS(url, name string, ack jetstream.AckPolicy) (*NATS, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &NATS{name: name, url: url, ack: ack, nc: nc, js: js}, nil
}

// Name labels the target.
func (n *NATS) Name() string { return n.name }

// Close closes the connection.
func (n *NATS) Close() error { n.nc.Close(); return nil }

// CreateStream creates a file-stored stream with the target's replicas
// unless it exists, and on a cluster waits until the stream has a leader
// and every replica is current. A JetStream stream is one ordered log:
// partitions must be 1.
func (n *NATS) CreateStream(ctx context.Context, stream string, partitions int) error {
	if partitions != 1 {
		return fmt.Errorf("nats: a stream is one partition, not %d", partitions)
	}
	_, err := n.js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream},
		Storage: jetstream.FileStorage, Replicas: max(n.replicas, 1)})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return err
	}
	if n.replicas <= 1 {
		return nil
	}
	return waitFor(ctx, 30*time.Second, "nats stream "+stream+" leader", func() error {
		_, err := n.streamLeader(ctx, stream)
		return err
	})
}

// streamLeader returns the name of the server leading a replicated
// stream, or an error while it has none or a replica is not current.
func (n *NATS) streamLeader(ctx context.Context, stream string) (string, error) {
	s, err := n.js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	c := info.Cluster
	switch {
	case c == nil || c.Leader == "":
		return "", errors.New("nats: stream has no leader")
	case len(c.Replicas) < n.replicas-1:
		return "", fmt.Errorf("nats: stream has %d followers of %d", len(c.Replicas), n.replicas-1)
	}
	for _, r := range c.Replicas {
		if !r.Current || r.Offline {
			return "", fmt.Errorf("nats: replica %s not current", r.Name)
		}
	}
	return c.Leader, nil
}

// producerURL returns the URLs a producer of stream connects to, the
// stream leader's first when it is known.
func (n *NATS) producerURL(ctx context.Context, stream string) string {
	if len(n.serverURLs) == 0 {
		return n.url
	}
	if leader, err := n.streamLeader(ctx, stream); err == nil && n.serverURLs[leader] != "" {
		return n.serverURLs[leader] + "," + n.url
	}
	return n.url
}

// DeleteStream deletes the stream.
func (n *NATS) DeleteStream(ctx context.Context, stream string) error {
	return n.js.DeleteStream(ctx, stream)
}

// StoredRecords returns the stream's message count.
func (n *NATS) StoredRecords(ctx context.Context, stream string) (int64, error) {
	s, err := n.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.State.Msgs), nil
}

// NewProducer opens a connection of its own (to the stream leader's server
// on a cluster) and publishes asynchronously with a window of
// natsMaxPending. Keys are ignored: a stream has no partitions to spread
// them over.
func (n *NATS) NewProducer(ctx context.Context, stream string, o bench.ProducerOptions) (bench.Producer, error) {
	maxPending := natsMaxPending
	if n.maxPending > 0 {
		maxPending = n.maxPending
	}
	if o.MaxPending > 0 {
		maxPending = o.MaxPending
	}
	p := &natsProducer{subject: stream, pending: map[*nats.Msg]func(error){},
		window: make(chan struct{}, maxPending)}
	// In the given order: the stream leader's server first.
	nc, err := nats.Connect(n.producerURL(ctx, stream), nats.DontRandomize())
	if err != nil {
		return nil, err
	}
	// The window blocks SendAsync (as Strata's MaxBufferedRecords does);
	// nats.go's own limit sits above it, so it never fails a publish for
	// being stalled.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*maxPending),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) { p.finish(m, nil) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { p.finish(m, err) }))
	if err != nil {
		nc.Close()
		return nil, err
	}
	p.nc, p.js = nc, js
	return p, nil
}

type natsProducer struct {
	subject string
	nc      *nats.Conn
	js      jetstream.JetStream
	window  chan struct{} // one token per publish awaiting its ack
	mu      sync.Mutex
	pending map[*nats.Msg]func(error)
}

func (p *natsProducer) finish(m *nats.Msg, err error) {
	p.mu.Lock()
	done := p.pending[m]
	delete(p.pending, m)
	p.mu.Unlock()
	if done != nil {
		<-p.window
		done(err)
	}
}

func (p *natsProducer) SendAsync(_, value []byte, done func(error)) {
	m := &nats.Msg{Subject: p.subject, Data: value}
	p.window <- struct{}{}
	p.mu.Lock()
	p.pending[m] = done // before publishing: the ack may come at once
	p.mu.Unlock()
	if _, err := p.js.PublishMsgAsync(m); err != nil {
		p.finish(m, err)
	}
}

func (p *natsProducer) Send(ctx context.Context, _, value []byte) error {
	_, err := p.js.Publish(ctx, p.subject, value)
	return err
}

func (p *natsProducer) Flush(ctx context.Context) error {
	select {
	case <-p.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("nats: %d publishes unacknowledged: %w", p.js.PublishAsyncPending(), ctx.Err())
	}
}

func (p *natsProducer) Close() error {
	var err error
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("nats: %d publishes unacknowledged after 30s", p.js.PublishAsyncPending())
	}
	p.nc.Close()
	return err
}

// NewConsumer opens a connection of its own and an ephemeral pull
// consumer (a durable one named o.Group with a group) with the target's
// ack policy, read through a Messages iterator that keeps natsPullBatch
// messages requested ahead.
func (n *NATS) NewConsumer(ctx context.Context, stream string, o bench.ConsumerOptions) (bench.Consumer, error) {
	deliver := jetstream.DeliverAllPolicy
	if o.FromEnd {
		deliver = jetstream.DeliverNewPolicy
	}
	return n.pullConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: o.Group, AckPolicy: n.ack,
		DeliverPolicy: deliver, InactiveThreshold: time.Minute})
}

func (n *NATS) pullConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*natsConsumer, error) {
	nc, err := nats.Connect(n.url)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: create consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(natsPullBatch))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &natsConsumer{nc: nc, it: it, ack: cfg.AckPolicy != jetstream.AckNonePolicy}, nil
}

type natsConsumer struct {
	nc  *nats.Conn
	it  jetstream.MessagesContext
	ack bool
}

// Receive returns the next message (acked first, with an ack policy).
func (c *natsConsumer) Receive(ctx context.Context, fn func([]byte)) (int, error) {
	m, err := c.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		return 0, err
	}
	if c.ack {
		if err := m.Ack(); err != nil {
			return 0, err
		}
	}
	fn(m.Data())
	return 1, nil
}

func (c *natsConsumer) Close() error {
	c.it.Stop()
	c.nc.Close()
	return nil
}

// NewQueueConsumer is a durable pull consumer named group with explicit
// acks: every member of the group shares it, each message goes to one of
// them and is redelivered unless acked. The options do not apply: the
// pull iterator keeps natsPullBatch messages requested ahead.
func (n *NATS) NewQueueConsumer(ctx context.Context, stream, group string, _ bench.QueueOptions) (bench.QueueConsumer, error) {
	c, err := n.pullConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: group,
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	return natsQueue{c}, nil
}

type natsQueue struct{ c *natsConsumer }

// Receive returns the next message of the pull iterator.
func (q natsQueue) Receive(ctx context.Context) (bench.QueueBatch, error) {
	m, err := q.c.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		return nil, err
	}
	return natsBatch{m}, nil
}

// Flush makes a round trip to the server, which has then read every ack
// sent before it (acks are not answered one by one).
func (q natsQueue) Flush(ctx context.Context) error { return q.c.nc.FlushWithContext(ctx) }

func (q natsQueue) Close() error { return q.c.Close() }

type natsBatch struct{ m jetstream.Msg }

func (b natsBatch) Len() int                  { return 1 }
func (b natsBatch) Value(int) []byte          { return b.m.Data() }
func (b natsBatch) Ack(context.Context) error { return b.m.Ack() }
