package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
)

// AckAsync acks in the background: after Flush every record is acked, so
// nothing is delivered again; after Close, AckAsync reports ErrClosed.
// newQueueConsumer returns a queue consumer of c with cfg, failing the test
// if it cannot be made.
func newQueueConsumer(t *testing.T, c *client.Client, cfg client.QueueConsumerConfig) *client.QueueConsumer {
	t.Helper()
	q, err := client.NewQueueConsumer(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestQueueAckAsync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ad := client.NewAdmin(c)
	if _, err := ad.CreateTopic(ctx, "ackasync", client.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := ad.CreateQueueGroup(ctx, "ackasync", "g", client.QueueSettings{AckTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProducer(c, client.DefaultProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		p.ProduceAsync(&client.Record{Topic: "ackasync", Value: fmt.Appendf(nil, "v%d", i)}, nil)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q := newQueueConsumer(t, c, client.QueueConsumerConfig{Topic: "ackasync", Group: "g", MaxMessages: 100, MaxAcksInFlight: 2})
	got := map[string]bool{}
	for len(got) < n {
		msgs, err := q.Receive(ctx, 0, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Fatalf("nothing to receive after %d records", len(got))
		}
		for _, m := range msgs {
			got[string(m.Value)] = true
		}
		q.AckAsync(msgs...)
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := ad.DescribeQueueGroup(ctx, "ackasync", "g")
	if err != nil {
		t.Fatal(err)
	}
	acked := uint64(0)
	for _, p := range d.Partitions {
		acked += p.Acked
	}
	if acked != n {
		t.Fatalf("%d records acked after Flush, want %d", acked, n)
	}
	// Past the ack timeout (1 s), nothing comes back: the acks were
	// committed. The receive long-polls through the moment the leases
	// would have ended.
	if msgs, err := q.Receive(ctx, 0, 1500*time.Millisecond); err != nil || len(msgs) != 0 {
		t.Fatalf("after the ack timeout: %d records, %v", len(msgs), err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q.AckAsync(client.QueueMessage{Topic: "ackasync", Partition: 0, Offset: 0})
	if err := q.Flush(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("AckAsync after Close: Flush returned %v, want ErrClosed", err)
	}
}
