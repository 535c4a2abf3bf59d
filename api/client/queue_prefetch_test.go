package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
)

// prefetchTopic creates topic with parts partitions and the queue group g
// with settings s, produces n records ("v0", "v1", ...) and returns the
// client and an Admin.
func prefetchTopic(t *testing.T, ctx context.Context, topic string, parts int32, n int, s client.QueueSettings) (*client.Client, *client.Admin) {
	t.Helper()
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ad := client.NewAdmin(c)
	if _, err := ad.CreateTopic(ctx, topic, client.TopicConfig{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	if _, err := ad.CreateQueueGroup(ctx, topic, "g", s); err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProducer(c, client.DefaultProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	var perr error
	var mu sync.Mutex
	for i := range n {
		p.ProduceAsync(&client.Record{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)}, func(_ client.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			perr = errors.Join(perr, err)
		})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		t.Fatal(perr)
	}
	return c, ad
}

// queueTotals sums a queue group's counters over its partitions.
func queueTotals(t *testing.T, ctx context.Context, ad *client.Admin, topic string) (acked, deliveries, redeliveries uint64) {
	t.Helper()
	d, err := ad.DescribeQueueGroup(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Partitions {
		acked += p.Acked
		deliveries += p.Deliveries
		redeliveries += p.Redeliveries
	}
	return acked, deliveries, redeliveries
}

// With Prefetch, Receive and Run hand out every record exactly once when
// nothing fails: each is delivered once (no redelivery), returned once,
// and a Receive never returns more than it was asked for.
func TestQueuePrefetchExactlyOnce(t *testing.T) {
	const n = 5000
	t.Run("Receive", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, ad := prefetchTopic(t, ctx, "prefetch-once-receive", 3, n, client.QueueSettings{})
		q := newQueueConsumer(t, c, client.QueueConsumerConfig{Topic: "prefetch-once-receive", Group: "g",
			MaxMessages: 500, Prefetch: 2000})
		defer q.Close()
		got := map[string]int{}
		for len(got) < n {
			msgs, err := q.Receive(ctx, 300, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				t.Fatalf("nothing to receive after %d records", len(got))
			}
			if len(msgs) > 300 {
				t.Fatalf("Receive(max 300) returned %d records", len(msgs))
			}
			for _, m := range msgs {
				got[string(m.Value)]++
				if got[string(m.Value)] > 1 || m.Deliveries != 1 {
					t.Fatalf("%s handed out %d times, delivery %d", m.Value, got[string(m.Value)], m.Deliveries)
				}
			}
			q.AckAsync(msgs...)
		}
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if msgs, err := q.Receive(ctx, 0, 200*time.Millisecond); err != nil || len(msgs) != 0 {
			t.Fatalf("after every record: %d records, %v", len(msgs), err)
		}
		if acked, del, redel := queueTotals(t, ctx, ad, "prefetch-once-receive"); acked != n || del != n || redel != 0 {
			t.Fatalf("acked %d, delivered %d, redelivered %d; want %d, %d, 0", acked, del, redel, n, n)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Run", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, ad := prefetchTopic(t, ctx, "prefetch-once-run", 3, n, client.QueueSettings{})
		q := newQueueConsumer(t, c, client.QueueConsumerConfig{Topic: "prefetch-once-run", Group: "g",
			MaxMessages: 200, Prefetch: 1000, Concurrency: 2})
		defer q.Close()
		var mu sync.Mutex
		got := map[string]int{}
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		err := q.Run(rctx, func(_ context.Context, m client.QueueMessage) error {
			mu.Lock()
			defer mu.Unlock()
			got[string(m.Value)]++
			if len(got) == n {
				stop()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("Run handled %d of %d records before the deadline", len(got), n)
		}
		for v, k := range got {
			if k != 1 {
				t.Fatalf("%s handled %d times", v, k)
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if acked, del, redel := queueTotals(t, ctx, ad, "prefetch-once-run"); acked != n || del != n || redel != 0 {
			t.Fatalf("acked %d, delivered %d, redelivered %d; want %d, %d, 0", acked, del, redel, n, n)
		}
	})
}

// Close gives the prefetched records that Receive never returned back to
// the group: another member receives them at once (not after the 1 minute
// ack timeout), with their delivery by the first member counted.
func TestQueuePrefetchCloseGivesBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic, n = "prefetch-close", 30
	c, ad := prefetchTopic(t, ctx, topic, 1, n, client.QueueSettings{AckTimeout: time.Minute})
	a := newQueueConsumer(t, c, client.QueueConsumerConfig{Topic: topic, Group: "g", MaxMessages: n, Prefetch: n})
	// One background receive leases all 30; Receive returns 10.
	first, err := a.Receive(ctx, 10, 5*time.Second)
	if err != nil || len(first) != 10 {
		t.Fatalf("first member: %d records, %v; want 10", len(first), err)
	}
	if _, err := a.Ack(ctx, first...); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := newQueueConsumer(t, c, client.QueueConsumerConfig{Topic: topic, Group: "g"})
	defer b.Close()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	got := map[string]bool{}
	for _, m := range first {
		got[string(m.Value)] = true
	}
	for len(got) < n && rctx.Err() == nil {
		msgs, err := b.Receive(rctx, 0, 2*time.Second)
		if err != nil && rctx.Err() == nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if got[string(m.Value)] {
				t.Fatalf("%s received again, delivery %d", m.Value, m.Deliveries)
			}
			if m.Deliveries != 2 {
				t.Fatalf("%s: delivery %d, want 2 (the first member's prefetch counted)", m.Value, m.Deliveries)
			}
			got[string(m.Value)] = true
		}
		if _, err := b.Ack(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) < n {
		t.Fatalf("the second member received %d of the %d records the first had prefetched and not returned",
			len(got)-len(first), n-len(first))
	}
	if acked, del, redel := queueTotals(t, ctx, ad, topic); acked != n || del != n+20 || redel != 20 {
		t.Fatalf("acked %d, delivered %d, redelivered %d; want %d, %d, 20", acked, del, redel, n, n+20)
	}
}

// A prefetched record whose lease ended while it sat in the buffer is not
// handed out: the group has delivered it again meanwhile (here to another
// member, which acked it).
func TestQueuePrefetchExpiredNotHandedOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic, n = "prefetch-expired", 10
	c, _ := prefetchTopic(t, ctx, topic, 1, n, client.QueueSettings{AckTimeout: time.Second})
	a := newQueueConsumer(t, c, client.QueueConsumerConfig{Topic: topic, Group: "g", MaxMessages: n, Prefetch: n})
	defer a.Close()
	first, err := a.Receive(ctx, 1, 5*time.Second)
	if err != nil || len(first) != 1 {
		t.Fatalf("first member: %d records, %v; want 1", len(first), err)
	}
	if _, err := a.Ack(ctx, first...); err != nil {
		t.Fatal(err)
	}
	// The other 9 wait in a's buffer (a fetches again only when half a
	// batch fits). b long-polls until their leases end and the group
	// delivers them to b.
	b := newQueueConsumer(t, c, client.QueueConsumerConfig{Topic: topic, Group: "g"})
	defer b.Close()
	seen := 0
	for seen < n-1 {
		msgs, err := b.Receive(ctx, 0, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Fatalf("the second member got %d of %d records after their leases ended", seen, n-1)
		}
		if _, err := b.Ack(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		seen += len(msgs)
	}
	msgs, err := a.Receive(ctx, 0, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Fatalf("the first member handed out %d records whose lease had ended (first %s, delivery %d)",
			len(msgs), msgs[0].Value, msgs[0].Deliveries)
	}
}

// An error of a background receive is returned by the next Receive.
func TestQueuePrefetchError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "prefetch-error"
	c, ad := prefetchTopic(t, ctx, topic, 1, 5, client.QueueSettings{})
	q := newQueueConsumer(t, c, client.QueueConsumerConfig{Topic: topic, Group: "g", MaxMessages: 10,
		Prefetch: 10, MaxWait: 200 * time.Millisecond})
	defer q.Close()
	msgs, err := q.Receive(ctx, 0, 5*time.Second)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("%d records, %v; want 5", len(msgs), err)
	}
	if err := ad.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for {
		msgs, err := q.Receive(ctx, 0, time.Second)
		if len(msgs) > 0 {
			t.Fatalf("%d records from a deleted topic", len(msgs))
		}
		if err != nil {
			if !errors.Is(err, client.ErrUnknownTopic) {
				t.Fatalf("Receive returned %v, want the background receive's ErrUnknownTopic", err)
			}
			t.Logf("background error: %v", err)
			break
		}
	}
}
