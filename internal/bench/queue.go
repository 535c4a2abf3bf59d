package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// QueueTarget is a Target that has queue groups: records leased to one
// member each and acknowledged. Strata (queue groups) and NATS JetStream
// (pull consumers with explicit acks) are.
type QueueTarget interface {
	Target
	// NewQueueConsumer joins (creating it if needed) the queue group of
	// stream; a new group starts at the stream's first record.
	NewQueueConsumer(ctx context.Context, stream, group string, opt QueueOptions) (QueueConsumer, error)
}

// QueueOptions tune a queue member where the target has the knob.
type QueueOptions struct {
	// Prefetch is, for Strata, QueueConsumerConfig.Prefetch: records
	// leased ahead of the member's loop (0: none, one Receive at a time).
	// NATS ignores it: its pull iterator always keeps its batch requested
	// ahead.
	Prefetch int
}

// QueueConsumer is one member of a queue group.
type QueueConsumer interface {
	// Receive waits for at least one leased record (or ctx) and returns
	// what it leased, in the client's natural batch (Strata: one Receive
	// call; NATS: one message of the pull iterator).
	Receive(ctx context.Context) (QueueBatch, error)
	// Flush waits until the acks of this member are done on the server
	// (Strata: AckAsync's requests answered; NATS: nothing to wait for,
	// its Ack does not wait for the server either), and returns their
	// first error. The run's clock stops after every member's Flush.
	Flush(ctx context.Context) error
	// Close leaves the group.
	Close() error
}

// QueueBatch is records leased by one Receive.
type QueueBatch interface {
	Len() int
	Value(i int) []byte
	// Ack acknowledges every record of the batch, in the client's usual
	// way for throughput, without waiting for the server (Strata: one
	// AckAsync for the batch; NATS: Ack per message); Flush waits.
	Ack(ctx context.Context) error
}

// QueueConfig is a queue workload: receive and ack Records stored records.
type QueueConfig struct {
	Stream  string
	Group   string
	Records int64
	// Members is the number of group members, each with its own
	// connection and receive-and-ack loop; default 1.
	Members int
	// Options are given to every member (QueueTarget.NewQueueConsumer).
	Options  QueueOptions
	Timeout  time.Duration // no record for this long ends the run; default 10 s
	Progress io.Writer
}

// Queue receives and acknowledges cfg.Records records with cfg.Members
// members and reports the throughput and, per record, the time from its
// Receive returning to its Ack returning. It returns ErrNotAvailable when
// t has no queue groups.
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
	cfg.Members = max(cfg.Members, 1)
	members := make([]QueueConsumer, 0, cfg.Members)
	closeAll := func() error {
		var errs []error
		for _, c := range members {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	for range cfg.Members {
		c, err := qt.NewQueueConsumer(ctx, cfg.Stream, cfg.Group, cfg.Options)
		if err != nil {
			return nil, errors.Join(err, closeAll())
		}
		members = append(members, c)
	}
	q := &queueRun{hist: NewHistogram(), records: cfg.Records}
	stop := startProgress(cfg.Progress, "queue", &q.n, cfg.Records)
	rctx, cancel := stallContext(ctx, &q.n, cfg.Timeout)
	defer cancel()
	q.finish = cancel
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := q.loop(rctx, c)
			if ferr := c.Flush(ctx); ferr != nil && err == nil {
				err = fmt.Errorf("ack: %w", ferr)
			}
			if err != nil {
				q.errs.set(err)
				cancel() // stop the other members
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	res := &Result{Workload: "queue receive+ack", Target: t.Name(), Records: q.n.Load(), Bytes: q.bytes.Load(),
		Elapsed: elapsed, Latency: q.hist}
	var runErr error
	if q.n.Load() < cfg.Records {
		runErr = fmt.Errorf("%w: acked %d of %d records: %w", ErrIncomplete, q.n.Load(), cfg.Records, q.errs.get())
	}
	return res, errors.Join(runErr, closeAll())
}

// queueRun is the shared state of the members of one queue run.
type queueRun struct {
	hist     *Histogram
	records  int64
	n, bytes atomic.Int64
	errs     firstError
	finish   func() // ends the other members' receives once the run is complete
}

// loop receives and acks batches until the run has its records.
func (q *queueRun) loop(ctx context.Context, c QueueConsumer) error {
	for q.n.Load() < q.records {
		b, err := c.Receive(ctx)
		if err != nil {
			if q.n.Load() >= q.records {
				return nil // another member took the last records
			}
			return err
		}
		got := time.Now()
		if err := b.Ack(ctx); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		d := time.Since(got)
		for i := range b.Len() {
			q.hist.Record(d)
			q.bytes.Add(int64(len(b.Value(i))))
		}
		if q.n.Add(int64(b.Len())) >= q.records {
			q.finish()
		}
	}
	return nil
}
