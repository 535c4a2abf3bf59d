package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// Producer writes records to topics, batching them per partition and
// delivering each batch at least once, exactly once with idempotence.
// It is safe for concurrent use.
//
// Goroutines: a loop that seals, encodes and sends batches; a callback
// goroutine that runs the records' callbacks in the order their outcomes
// were known; and a sender and a receiver per broker stream. Close waits
// for all of them.
//
// Lock order: Producer.mu, then Client.mu (through the client's cache
// helpers). Producer.mu is never held across network calls, encoding or
// callbacks.
type Producer struct {
	c      *Client
	cfg    ProducerConfig
	log    *slog.Logger
	lim    partLimits
	ctx    context.Context // cancelled when Close is done flushing
	cancel context.CancelFunc

	mu        sync.Mutex // guards the fields below
	closed    bool       // Close began: no new records
	pid       int64
	epoch     int16
	pidReady  bool
	pidRetry  time.Time
	pidErrs   int   // consecutive failures to get the producer id
	fatal     error // the producer id could not be had: every record fails
	topics    map[string]*topicState
	streams   map[string]*prodStream // by broker address
	buffered  int                    // records accepted whose callback has not run
	flushing  int
	space     chan struct{} // closed and replaced when buffered drops below the maximum
	drained   chan struct{} // closed and replaced when buffered reaches 0
	done      []completion  // outcomes waiting for the callback goroutine
	cbStop    bool
	corr      uint64
	pidWaitCh chan struct{} // closed once pidReady or fatal

	wake   chan struct{} // cap 1: the loop has work
	cbWake chan struct{} // cap 1: the callback goroutine has work
	quit   chan struct{} // closed to stop the loop
	wg     sync.WaitGroup
	cbWG   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// startSeq is the first sequence of every partition: 0, except in
	// tests that bring the wrap of the sequences near (export_test.go).
	startSeq int64
}

// topicState is a topic as the producer sees it.
type topicState struct {
	name        string
	parts       []*partState // nil until the partition count is known
	waiting     []waitingRec // records that came before the partition count
	rr          uint32       // round-robin counter
	sticky      int          // the sticky partition, -1 for none
	metaErrs    int
	metaRetryAt time.Time
}

type waitingRec struct {
	rec          record.Record
	cb           func(Result, error)
	partition    int32
	hasPartition bool
}

// NewProducer returns a producer writing through c. With idempotence (the
// default) it asks the broker for a producer id in the background; see
// ProducerID.
func NewProducer(c *Client, cfg ProducerConfig) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{
		c: c, cfg: cfg, log: loggerOr(cfg.Logger), ctx: ctx, cancel: cancel,
		lim: partLimits{
			batchBytes:  cfg.BatchBytes,
			linger:      cfg.Linger,
			maxInFlight: cfg.MaxInFlight,
			maxRetries:  cfg.MaxRetries,
			backoff: func(n int) time.Duration {
				return backoffDelay(cfg.RetryBackoff, cfg.MaxRetryBackoff, n-1)
			},
		},
		topics:    map[string]*topicState{},
		streams:   map[string]*prodStream{},
		space:     make(chan struct{}),
		drained:   make(chan struct{}),
		pidWaitCh: make(chan struct{}),
		wake:      make(chan struct{}, 1),
		cbWake:    make(chan struct{}, 1),
		quit:      make(chan struct{}),
	}
	if cfg.DisableIdempotence {
		p.pidReady = true
		close(p.pidWaitCh)
	}
	p.wg.Add(1)
	go p.run()
	p.cbWG.Add(1)
	go p.runCallbacks()
	return p, nil
}

// ProducerID waits for the idempotent producer id and returns it (0
// without idempotence). Pass it as ProducerConfig.ProducerID to resume
// this producer in a later run.
func (p *Producer) ProducerID(ctx context.Context) (int64, error) {
	select {
	case <-p.pidWaitCh:
	case <-p.ctx.Done():
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.fatal
}

// Produce writes one record and waits for its acknowledgement. If ctx ends
// first, Produce returns ctx's error; the record may still be written.
func (p *Producer) Produce(ctx context.Context, r *Record) (Result, error) {
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	if err := p.produce(ctx, r, func(res Result, err error) { ch <- outcome{res, err} }); err != nil {
		return Result{}, err
	}
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// ProduceAsync hands a record to the producer and returns; cb (which may
// be nil) runs once with the outcome, on the producer's callback
// goroutine, so it must not block for long (a record refused at once,
// because the producer is closed or the record has no topic, gets its
// callback on the caller's goroutine instead). Callbacks of one partition
// run in offset order. ProduceAsync blocks while MaxBufferedRecords
// records are buffered.
func (p *Producer) ProduceAsync(r *Record, cb func(Result, error)) {
	_ = p.produce(context.Background(), r, cb)
}

// produce buffers r. It returns an error only when ctx ended while waiting
// for room; every other outcome goes to cb.
func (p *Producer) produce(ctx context.Context, r *Record, cb func(Result, error)) error {
	rec := record.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
	now := time.Now()
	if rec.Timestamp.IsZero() {
		rec.Timestamp = now
	}
	p.mu.Lock()
	for !p.closed && p.buffered >= p.cfg.MaxBufferedRecords {
		ch := p.space
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
	var err error
	switch {
	case p.closed:
		err = ErrClosed
	case p.fatal != nil:
		err = p.fatal
	case r.Topic == "":
		err = fmt.Errorf("%w: record without a topic", ErrInvalidArgument)
	}
	if err != nil {
		p.mu.Unlock()
		if cb != nil {
			cb(Result{Topic: r.Topic, Partition: -1, Offset: -1}, err)
		}
		return nil
	}
	p.buffered++
	t := p.topics[r.Topic]
	if t == nil {
		t = &topicState{name: r.Topic, sticky: -1}
		p.topics[r.Topic] = t
	}
	if t.parts == nil {
		t.waiting = append(t.waiting, waitingRec{rec: rec, cb: cb, partition: r.Partition, hasPartition: r.HasPartition})
		p.mu.Unlock()
		p.signal()
		return nil
	}
	c, signal := p.routeLocked(t, rec, cb, r.Partition, r.HasPartition, now)
	if c != nil {
		p.done = append(p.done, *c)
	}
	p.mu.Unlock()
	if c != nil {
		p.signalCallbacks()
	}
	if signal {
		p.signal()
	}
	return nil
}

// routeLocked puts a record in its partition's open batch. It returns the
// record's completion when it cannot be routed, and whether the loop must
// look (a batch was sealed or a linger started). Caller must hold p.mu.
func (p *Producer) routeLocked(t *topicState, rec record.Record, cb func(Result, error), partition int32, explicit bool, now time.Time) (*completion, bool) {
	n := len(t.parts)
	var i int
	sealedOld := false
	switch {
	case explicit:
		if partition < 0 || int(partition) >= n {
			err := newError(codes.NotFound, fmt.Sprintf("unknown partition %d of %q (%d partitions)", partition, t.name, n), ErrUnknownPartition)
			return &completion{tp: TopicPartition{t.name, partition}, cbs: []func(Result, error){cb}, base: -1, err: err}, false
		}
		i = int(partition)
	case rec.Key != nil:
		i = record.KeyPartition(rec.Key, n)
	case p.cfg.Partitioning == RoundRobin:
		i = int(t.rr % uint32(n))
		t.rr++
	default:
		if t.sticky >= 0 {
			// A record that does not fit ends the sticky partition's
			// batch and goes to the next partition.
			if old := t.parts[t.sticky]; len(old.recs) > 0 && old.bytes+recordSize(&rec) > p.lim.batchBytes-record.BatchHeaderLen {
				old.seal()
				sealedOld = true
				t.sticky = -1
			}
		}
		if t.sticky < 0 {
			t.sticky = int(t.rr % uint32(n))
			t.rr++
		}
		i = t.sticky
	}
	ps := t.parts[i]
	sealed := ps.add(rec, cb, &p.lim, now)
	if sealed && i == t.sticky {
		t.sticky = -1
	}
	return nil, sealedOld || sealed || len(ps.recs) == 1
}

// Flush sends every buffered record at once, without waiting for Linger,
// and waits until no record is buffered: each has been acknowledged or
// has failed, and its callback has run.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.buffered == 0 {
		p.mu.Unlock()
		return nil
	}
	p.flushing++
	ch := p.drained
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	p.signal()
	for {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
		if p.buffered == 0 {
			p.mu.Unlock()
			return nil
		}
		ch = p.drained
		p.mu.Unlock()
	}
}

// Close stops taking records, flushes (up to CloseTimeout), stops the
// producer's goroutines and fails what is left with ErrClosed. It is
// idempotent and does not close the Client.
func (p *Producer) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.space) // wake producers waiting for room: they get ErrClosed
		p.space = make(chan struct{})
		p.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CloseTimeout)
		ferr := p.Flush(ctx)
		cancel()

		close(p.quit)
		p.cancel()
		p.wg.Wait()

		p.mu.Lock()
		var out []completion
		for _, t := range p.topics {
			out = t.failWaiting(ErrClosed, out)
			for _, ps := range t.parts {
				out = append(out, ps.failAll(ErrClosed)...)
			}
		}
		p.done = append(p.done, out...)
		p.cbStop = true
		p.mu.Unlock()
		p.signalCallbacks()
		p.cbWG.Wait()

		if len(out) > 0 {
			p.closeErr = fmt.Errorf("client: producer closed with %d records undelivered: %w", len(out), errors.Join(ErrClosed, ferr))
		}
	})
	return p.closeErr
}

func (p *Producer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Producer) signalCallbacks() {
	select {
	case p.cbWake <- struct{}{}:
	default:
	}
}

// completeLocked queues outcomes for the callback goroutine. Caller must
// hold p.mu.
func (p *Producer) completeLocked(out []completion) {
	if len(out) == 0 {
		return
	}
	p.done = append(p.done, out...)
	p.signalCallbacks()
}

// runCallbacks runs callbacks in the order the outcomes were known, then
// releases the records' room in the buffer. It reuses two slices in turn
// for the outcomes, so that a steady flow allocates nothing.
func (p *Producer) runCallbacks() {
	defer p.cbWG.Done()
	var spare []completion
	for {
		p.mu.Lock()
		out := p.done
		p.done = spare[:0]
		stop := p.cbStop && len(out) == 0
		p.mu.Unlock()
		if stop {
			return
		}
		if len(out) == 0 {
			spare = out
			<-p.cbWake
			continue
		}
		n := 0
		for i := range out {
			out[i].call()
			n += len(out[i].cbs)
		}
		clear(out) // drop the references to the callbacks
		spare = out
		p.mu.Lock()
		before := p.buffered
		p.buffered -= n
		if before >= p.cfg.MaxBufferedRecords && p.buffered < p.cfg.MaxBufferedRecords {
			close(p.space)
			p.space = make(chan struct{})
		}
		if p.buffered == 0 {
			close(p.drained)
			p.drained = make(chan struct{})
		}
		p.mu.Unlock()
	}
}

// ensureProducerID asks for the producer id when it is not known yet and
// its retry time has come. A broker that refuses the id (an unknown
// ProducerID) is fatal: every buffered and future record fails.
func (p *Producer) ensureProducerID() {
	p.mu.Lock()
	if p.pidReady || p.fatal != nil || time.Now().Before(p.pidRetry) {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	var resp *stratav1.InitProducerResponse
	err := p.c.callAny(p.ctx, ErrUnknownProducer, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.InitProducer(ctx, &stratav1.InitProducerRequest{ProducerId: p.cfg.ProducerID})
		return err
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err == nil:
		p.pid, p.epoch, p.pidReady, p.pidErrs = resp.GetProducerId(), int16(resp.GetProducerEpoch()), true, 0
		close(p.pidWaitCh)
		p.log.Info("producer id", "id", p.pid, "epoch", p.epoch, "resumed", p.cfg.ProducerID != 0)
		if p.cfg.ProducerID != 0 && p.pid != p.cfg.ProducerID {
			p.log.Warn("the resumed producer id has spent its epochs: the broker gave a new id, and the earlier run's records are not recognised",
				"id", p.cfg.ProducerID, "new_id", p.pid)
		}
	case p.ctx.Err() != nil:
	case retriable(err) || errors.Is(err, ErrNoBrokers):
		// The client retried already. Keep trying for new records, but
		// give the buffered ones their error after a second round.
		p.pidRetry = time.Now().Add(p.cfg.MaxRetryBackoff)
		p.pidErrs++
		p.log.Warn("no producer id yet", "err", err, "rounds", p.pidErrs)
		if p.pidErrs >= 2 {
			p.pidErrs = 0
			p.completeLocked(p.failBufferedLocked(fmt.Errorf("client: no producer id: %w", err)))
		}
	default:
		p.fatal = fmt.Errorf("client: init producer %d: %w", p.cfg.ProducerID, err)
		close(p.pidWaitCh)
		p.completeLocked(p.failBufferedLocked(p.fatal))
	}
}

// fenceLocked ends the producer after a broker answered err, a fenced
// epoch: another producer started with its id. Retrying cannot help, and
// a record this one wrote next might be taken for the newer one's, so the
// producer fails every record it has not sent, and every later one, with a
// ProducerFencedError. Caller must hold p.mu.
func (p *Producer) fenceLocked(err error) {
	if p.fatal != nil {
		return
	}
	var be *Error
	newer := int16(-1)
	if errors.As(err, &be) {
		newer = be.fencedBy
	}
	p.fatal = &ProducerFencedError{ProducerID: p.pid, Epoch: p.epoch, NewerEpoch: newer, Err: err}
	p.log.Error("producer fenced: another producer with its id started; it writes no more", "id", p.pid,
		"epoch", p.epoch, "newer_epoch", newer)
	var out []completion
	for _, t := range p.topics {
		out = t.failWaiting(p.fatal, out)
		for _, ps := range t.parts {
			out = append(out, ps.failUnsent(p.fatal)...)
		}
	}
	p.completeLocked(out)
}

// failLandedLocked handles the answer err to batch b when the producer may
// be done for: a fenced answer ends it (fenceLocked), and once it has
// ended, b fails with that error, not retried. It reports whether it
// handled the answer. Caller must hold p.mu.
func (p *Producer) failLandedLocked(ps *partState, b *batch, err error) bool {
	if errors.Is(err, ErrProducerFenced) {
		p.fenceLocked(err)
	}
	if p.fatal == nil {
		return false
	}
	ps.landed(b)
	p.completeLocked(ps.fail(b, p.fatal))
	return true
}

// failWaiting fails the records waiting for the topic's metadata.
func (t *topicState) failWaiting(err error, out []completion) []completion {
	if len(t.waiting) == 0 {
		return out
	}
	cbs := make([]func(Result, error), len(t.waiting))
	for i, w := range t.waiting {
		cbs[i] = w.cb
	}
	t.waiting = nil
	return append(out, completion{tp: TopicPartition{t.name, -1}, cbs: cbs, base: -1, err: err})
}

// failBufferedLocked fails every record not yet sent, before the producer
// has an id; the partitions' sequences start again at 0. Caller must hold
// p.mu.
func (p *Producer) failBufferedLocked(err error) []completion {
	var out []completion
	for _, t := range p.topics {
		out = t.failWaiting(err, out)
		for _, ps := range t.parts {
			out = append(out, ps.failAll(err)...)
			ps.nextSeq = p.startSeq
		}
	}
	return out
}
