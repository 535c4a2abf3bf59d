package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// QueueTarget is a Target that has queue groups: records leased to one
// member each and acknowledged one by one. NATS JetStream's pull consumers
// with explicit acks are one. Strata's Target implements it once queue
// groups land (internal/broker queue groups and client.QueueConsumer):
// a NewQueueConsumer on *Strata is all the queue workload needs.
type QueueTarget interface {
	Target
	// NewQueueConsumer joins (creating it if needed) the queue group of
	// stream, positioned at the stream's start.
	NewQueueConsumer(ctx context.Context, stream, group string) (QueueConsumer, error)
}

// QueueConsumer is one member of a queue group.
type QueueConsumer interface {
	// Receive waits for at least one leased record (or ctx) and returns
	// the leased records.
	Receive(ctx context.Context) ([]QueueMessage, error)
	// Close leaves the group.
	Close() error
}

// QueueMessage is one leased record.
type QueueMessage interface {
	Value() []byte
	// Ack acknowledges the record: it is not delivered again.
	Ack() error
}

// QueueConfig is a queue workload: receive and ack Records stored records.
type QueueConfig struct {
	Stream   string
	Group    string
	Records  int64
	Timeout  time.Duration // no record for this long ends the run; default 10 s
	Progress io.Writer
}

// Queue receives and acknowledges cfg.Records records one by one and
// reports the throughput and the receive-to-ack-returned latency. It
// returns ErrNotAvailable when t has no queue groups.
func Queue(ctx context.Context, t Target, cfg QueueConfig) (*Result, error) {
	qt, ok := t.(QueueTarget)
	if !ok {
		return nil, fmt.Errorf("%w: %s has no queue groups", ErrNotAvailable, t.Name())
	}
	if cfg.Records <= 0 || cfg.Group == "" {
		return nil, errors.New("bench: a queue run needs records and a group")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	c, err := qt.NewQueueConsumer(ctx, cfg.Stream, cfg.Group)
	if err != nil {
		return nil, err
	}
	var n, bytes atomic.Int64
	hist := NewHistogram()
	stop := startProgress(cfg.Progress, "queue", &n, cfg.Records)
	rctx, cancel := stallContext(ctx, &n, cfg.Timeout)
	defer cancel()
	start := time.Now()
	var runErr error
loop:
	for n.Load() < cfg.Records {
		msgs, err := c.Receive(rctx)
		if err != nil {
			runErr = fmt.Errorf("%w: received %d of %d records: %w", ErrIncomplete, n.Load(), cfg.Records, err)
			break
		}
		got := time.Now()
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				runErr = fmt.Errorf("ack: %w", err)
				break loop
			}
			hist.Record(time.Since(got))
			bytes.Add(int64(len(m.Value())))
			n.Add(1)
		}
	}
	elapsed := time.Since(start)
	stop()
	res := &Result{Workload: "queue receive+ack", Target: t.Name(), Records: n.Load(), Bytes: bytes.Load(),
		Elapsed: elapsed, Latency: hist}
	return res, errors.Join(runErr, c.Close())
}
