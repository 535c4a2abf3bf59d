package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// QueueMessage is a record leased to a queue-group member. Settle it with
// Ack, Nack or Reject before its lease ends, or Extend the lease.
type QueueMessage struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte // nil when the record has no key
	Value     []byte
	Headers   []record.Header
	Timestamp time.Time
	// Deliveries counts the deliveries of the record, this one included.
	Deliveries int32
	// LeaseDeadline is when the lease ends unless extended (the broker's
	// wall clock; the broker itself times leases on its monotonic clock).
	LeaseDeadline time.Time
}

// QueueConsumerConfig configures a QueueConsumer.
type QueueConsumerConfig struct {
	// Topic and Group name the queue group (create it with
	// Admin.CreateQueueGroup). Required.
	Topic, Group string
	// MemberID names this member in leases; default: the client id and a
	// random suffix.
	MemberID string
	// MaxMessages is how many records one receive asks for; default 100.
	MaxMessages int
	// MaxWait is how long a receive long-polls; default 5 s.
	MaxWait time.Duration
	// Concurrency is how many receive-and-handle loops Run runs; default 1.
	Concurrency int
	// MaxAcksInFlight bounds the AckAsync requests waiting for their
	// answer; a further AckAsync waits for one. Default 4.
	MaxAcksInFlight int
	// Prefetch is how many records, at most, the consumer leases ahead of
	// the application: background receives keep up to Prefetch records
	// received (or asked for) and not yet returned by Receive, so that the
	// next batch is already on its way while the application handles this
	// one. Each background receive asks for up to MaxMessages records, and
	// up to Prefetch/MaxMessages of them (at least 1, at most 8) are in
	// flight at once. Default 0: no prefetch, every Receive is one request.
	// A prefetched record's lease runs while it waits in the buffer, and
	// its delivery is counted when the broker hands it out; see the
	// package documentation (Queue consumer) for the rules.
	Prefetch int
	// PrefetchMinLease is how much of its lease a prefetched record must
	// still have for Receive to return it; a record with less is dropped
	// from the buffer (and given back, see Close) instead. Default, and
	// when not below the group's ack timeout: half the ack timeout.
	PrefetchMinLease time.Duration
}

// QueueConsumer is a member of a queue group. Its methods are safe for
// concurrent use.
type QueueConsumer struct {
	c      *Client
	cfg    QueueConsumerConfig
	rr     atomic.Uint32
	closed atomic.Bool

	acks     chan struct{} // AckAsync slots: a request in flight holds one
	ackMu    sync.Mutex
	ackErr   error // the first AckAsync error since the last Flush
	ackCtx   context.Context
	ackClose context.CancelFunc

	pf *prefetcher // nil without Prefetch
}

// NewQueueConsumer returns a member of the queue group cfg names.
func NewQueueConsumer(c *Client, cfg QueueConsumerConfig) (*QueueConsumer, error) {
	if cfg.Topic == "" || cfg.Group == "" {
		return nil, fmt.Errorf("%w: a queue consumer needs a topic and a group", ErrInvalidConfig)
	}
	if cfg.MemberID == "" {
		var r [6]byte
		_, _ = rand.Read(r[:])
		cfg.MemberID = c.cfg.ClientID + "-" + hex.EncodeToString(r[:])
	}
	if cfg.MaxMessages <= 0 {
		cfg.MaxMessages = 100
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 5 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.MaxAcksInFlight <= 0 {
		cfg.MaxAcksInFlight = 4
	}
	if cfg.Prefetch < 0 || cfg.PrefetchMinLease < 0 {
		return nil, fmt.Errorf("%w: negative Prefetch (%d) or PrefetchMinLease (%v)", ErrInvalidConfig, cfg.Prefetch, cfg.PrefetchMinLease)
	}
	q := &QueueConsumer{c: c, cfg: cfg, acks: make(chan struct{}, cfg.MaxAcksInFlight)}
	q.ackCtx, q.ackClose = context.WithCancel(context.Background())
	if cfg.Prefetch > 0 {
		q.pf = newPrefetcher(q)
	}
	return q, nil
}

// MemberID returns the member's id.
func (q *QueueConsumer) MemberID() string { return q.cfg.MemberID }

// Close makes further calls fail with ErrClosed and waits for the AckAsync
// requests in flight (returning their first error); leases still held
// expire on the broker. With Prefetch, it first stops the background
// receives and gives the prefetched records that Receive never returned
// back to the group (see prefetcher.close). It is idempotent and does not
// close the Client.
func (q *QueueConsumer) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	var errs []error
	if q.pf != nil {
		errs = append(errs, q.pf.close())
	}
	errs = append(errs, q.Flush(context.Background()))
	q.ackClose()
	return errors.Join(errs...)
}

// Receive leases up to max records (MaxMessages when max <= 0), waiting up
// to wait (MaxWait when 0) when none is available. Each call asks the
// leader of the next partition in turn, which serves every partition it
// leads, and answers NotLeader when it no longer leads the one asked for
// (the client then refreshes its metadata: a partition never starves
// behind a stale leader). An empty answer is not an error.
//
// With Prefetch, Receive returns records that background receives leased
// ahead (at most max, oldest first), waiting up to wait for some when
// there are none; an error of a background receive is returned by the
// first Receive that finds no record to return.
func (q *QueueConsumer) Receive(ctx context.Context, max int, wait time.Duration) ([]QueueMessage, error) {
	if q.closed.Load() {
		return nil, ErrClosed
	}
	if max <= 0 {
		max = q.cfg.MaxMessages
	}
	if wait == 0 {
		wait = q.cfg.MaxWait
	}
	if q.pf != nil {
		return q.pf.receive(ctx, max, wait)
	}
	return q.receive(ctx, max, wait)
}

// receive is one QueueReceive request, to the leader of the next
// partition in turn.
func (q *QueueConsumer) receive(ctx context.Context, max int, wait time.Duration) ([]QueueMessage, error) {
	n, err := q.c.PartitionCount(ctx, q.cfg.Topic)
	if err != nil {
		return nil, err
	}
	p := int32(q.rr.Add(1) % uint32(n))
	var resp *stratav1.QueueReceiveResponse
	err = q.c.callPartition(ctx, q.cfg.Topic, p, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.QueueReceive(ctx, &stratav1.QueueReceiveRequest{Topic: q.cfg.Topic, Group: q.cfg.Group,
			MemberId: q.cfg.MemberID, Partition: p, AlsoLed: true, MaxMessages: int32(max), MaxWaitMs: int32(wait / time.Millisecond)}, responseCallOption)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: receive from queue group %q: %w", q.cfg.Group, err)
	}
	out, err := queueMessages(resp, q.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("client: receive from queue group %q: %w", q.cfg.Group, err)
	}
	return out, nil
}

// Ack marks records done. It returns how many the broker settled (records
// already settled, or reset meanwhile, are not counted).
func (q *QueueConsumer) Ack(ctx context.Context, msgs ...QueueMessage) (int, error) {
	return q.settle(ctx, "ack", msgs, 0, "")
}

// AckAsync acknowledges records without waiting for the broker's answer,
// as a NATS JetStream Ack does, so that a member receives its next records
// while the acks of the last ones are being committed. At most
// MaxAcksInFlight requests are in flight; AckAsync waits for a free one.
// Errors are returned by the next Flush (or Close). An ack that fails
// leaves its records leased: they are delivered again after the ack
// timeout, as after any lost ack.
func (q *QueueConsumer) AckAsync(msgs ...QueueMessage) {
	if len(msgs) == 0 {
		return
	}
	if q.closed.Load() {
		q.setAckErr(ErrClosed)
		return
	}
	q.settleAsync("ack", msgs, 0, true)
}

// settleAsync sends a settle request without waiting for its answer, in
// one of the MaxAcksInFlight slots (Flush, and so Close, waits for them).
// Its error is kept for Flush when report is set, and dropped otherwise.
func (q *QueueConsumer) settleAsync(op string, msgs []QueueMessage, delay time.Duration, report bool) {
	select {
	case q.acks <- struct{}{}:
	case <-q.ackCtx.Done():
		return
	}
	go func() {
		defer func() { <-q.acks }()
		if _, err := q.settleAll(q.ackCtx, op, msgs, delay, ""); err != nil && report {
			q.setAckErr(err)
		}
	}()
}

func (q *QueueConsumer) setAckErr(err error) {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	if q.ackErr == nil {
		q.ackErr = err
	}
}

// Flush waits until every AckAsync made before it is answered (or ctx
// ends) and returns the first error of those acks since the last Flush.
func (q *QueueConsumer) Flush(ctx context.Context) error {
	// Holding every slot means no request is in flight.
	held := 0
	defer func() {
		for range held {
			<-q.acks
		}
	}()
	for held < cap(q.acks) {
		select {
		case q.acks <- struct{}{}:
			held++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	err := q.ackErr
	q.ackErr = nil
	return err
}

// Nack gives records back for redelivery after delay, or after the
// group's backoff when delay is 0. errText is kept as the last error and
// ends up in the dead-letter headers if the record runs out of deliveries.
func (q *QueueConsumer) Nack(ctx context.Context, delay time.Duration, errText string, msgs ...QueueMessage) (int, error) {
	return q.settle(ctx, "nack", msgs, delay, errText)
}

// Reject sends records straight to the group's dead-letter topic with
// reason "rejected" and the given error text.
func (q *QueueConsumer) Reject(ctx context.Context, errText string, msgs ...QueueMessage) (int, error) {
	return q.settle(ctx, "reject", msgs, 0, errText)
}

// Extend extends this member's leases on records still being worked on to
// d from now (the ack timeout when 0).
func (q *QueueConsumer) Extend(ctx context.Context, d time.Duration, msgs ...QueueMessage) (int, error) {
	return q.settle(ctx, "extend", msgs, d, "")
}

// settle is settleAll for a consumer that is not closed.
func (q *QueueConsumer) settle(ctx context.Context, op string, msgs []QueueMessage, delay time.Duration, errText string) (int, error) {
	if q.closed.Load() {
		return 0, ErrClosed
	}
	return q.settleAll(ctx, op, msgs, delay, errText)
}

// settleAll sends one request per partition to its leader, all at once (a
// leader commits concurrent settles in shared raft writes).
func (q *QueueConsumer) settleAll(ctx context.Context, op string, msgs []QueueMessage, delay time.Duration, errText string) (int, error) {
	byPart := map[int32][]int64{}
	for _, m := range msgs {
		byPart[m.Partition] = append(byPart[m.Partition], m.Offset)
	}
	var (
		wg    sync.WaitGroup
		total atomic.Int64
		mu    sync.Mutex
		errs  []error
	)
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		wg.Go(func() {
			n, err := q.settlePartition(ctx, op, p, byPart[p], delay, errText)
			total.Add(int64(n))
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return int(total.Load()), fmt.Errorf("client: %s in queue group %q: %w", op, q.cfg.Group, err)
	}
	return int(total.Load()), nil
}

func (q *QueueConsumer) settlePartition(ctx context.Context, op string, p int32, offs []int64, delay time.Duration, errText string) (int, error) {
	req := &stratav1.QueueSettleRequest{Topic: q.cfg.Topic, Group: q.cfg.Group, MemberId: q.cfg.MemberID,
		Offsets: []*stratav1.QueuePartitionOffsets{{Partition: p, Offsets: offs}},
		DelayMs: delay.Milliseconds(), Error: errText}
	var resp *stratav1.QueueSettleResponse
	err := q.c.callPartition(ctx, q.cfg.Topic, p, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		switch op {
		case "ack":
			resp, err = s.QueueAck(ctx, req)
		case "nack":
			resp, err = s.QueueNack(ctx, req)
		case "reject":
			resp, err = s.QueueReject(ctx, req)
		default:
			resp, err = s.QueueExtend(ctx, req)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return int(resp.GetSettled()), nil
}

// Handler processes one record. Returning nil acks it; an error nacks it
// (redelivery after the group's backoff) with the error's text.
type Handler func(ctx context.Context, m QueueMessage) error

// Run receives and handles records with Concurrency loops until ctx ends
// (then it returns nil) or a request fails for good. Each loop receives up
// to MaxMessages records, runs h on each in turn, then acks the successes
// with one request and nacks the failures. With Prefetch, the loops take
// their batches from the records leased ahead, so the next batch is on
// its way while h handles this one; records still buffered when Run
// returns stay for a later Receive or Run, or are given back by Close.
func (q *QueueConsumer) Run(ctx context.Context, h Handler) error {
	var wg sync.WaitGroup
	errc := make(chan error, q.cfg.Concurrency)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range q.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.runLoop(rctx, h); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func (q *QueueConsumer) runLoop(ctx context.Context, h Handler) error {
	for ctx.Err() == nil {
		msgs, err := q.Receive(ctx, 0, 0)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrUnavailable) {
				continue
			}
			return err
		}
		var ok []QueueMessage
		failed := map[string][]QueueMessage{}
		for _, m := range msgs {
			if err := h(ctx, m); err != nil {
				failed[err.Error()] = append(failed[err.Error()], m)
				continue
			}
			ok = append(ok, m)
		}
		// Settle even when ctx ended meanwhile: the work is done.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if len(ok) > 0 {
			if _, err := q.Ack(sctx, ok...); err != nil && !errors.Is(err, ErrUnavailable) {
				cancel()
				return err
			}
		}
		for text, ms := range failed {
			if _, err := q.Nack(sctx, 0, text, ms...); err != nil && !errors.Is(err, ErrUnavailable) {
				cancel()
				return err
			}
		}
		cancel()
	}
	return nil
}
