package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ProduceConfig is a produce workload.
type ProduceConfig struct {
	Stream     string
	Partitions int // for CreateStream; default 1
	// Records is the total across producers; Duration, when set, stops
	// sending earlier (whichever comes first). One of them must be set.
	Records  int64
	Duration time.Duration
	// Size is the value size in bytes.
	Size int
	// Producers is the number of concurrent producers; default 1.
	Producers int
	// Sync sends one record at a time and waits for each acknowledgement
	// (latency); otherwise records are pipelined (throughput).
	Sync bool
	// Keyed gives records one of 1024 keys (so they spread by key hash).
	Keyed bool
	// Rate bounds the records per second across producers; 0 for none.
	Rate     float64
	Producer ProducerOptions
	// Progress receives the live progress line; nil for none.
	Progress io.Writer
}

func (c *ProduceConfig) check() error {
	switch {
	case c.Records <= 0 && c.Duration <= 0:
		return errors.New("bench: set a number of records or a duration")
	case c.Size < 0:
		return fmt.Errorf("bench: size %d < 0", c.Size)
	case c.Stream == "":
		return errors.New("bench: no stream")
	}
	if c.Producers <= 0 {
		c.Producers = 1
	}
	if c.Partitions <= 0 {
		c.Partitions = 1
	}
	if c.Records <= 0 {
		c.Records = 1 << 62
	}
	return nil
}

// Payloads returns n distinct values of size bytes made of random capital
// letters (as Kafka's perf tool does): distinct so a compressed batch is
// not one value repeated, letters so compression has something to do.
func Payloads(n, size int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([][]byte, n)
	for i := range out {
		v := make([]byte, size)
		for j := range v {
			v[j] = 'A' + byte(r.IntN(26))
		}
		out[i] = v
	}
	return out
}

// keys returns n distinct keys.
func keys(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "key-%06d", i)
	}
	return out
}

// asyncSampleEvery is how often a pipelined (asynchronous) produce
// measures a record's latency: every record costs two clock reads and a
// closure, which on a small machine shared by client and server takes CPU
// from the system under test; one record in 8 still gives over 10^5
// samples per million records. One-at-a-time runs measure every record.
const asyncSampleEvery = 8

// ackState collects the outcomes of one run.
type ackState struct {
	hist    *Histogram
	acked   atomic.Int64
	failed  atomic.Int64
	errOnce sync.Once
	err     error
}

// ack counts one outcome without timing it.
func (a *ackState) ack(err error) {
	if err != nil {
		a.failed.Add(1)
		a.errOnce.Do(func() { a.err = err })
		return
	}
	a.acked.Add(1)
}

// timed counts one outcome and records its latency since sent.
func (a *ackState) timed(sent time.Time, err error) {
	if err == nil {
		a.hist.Record(time.Since(sent))
	}
	a.ack(err)
}

// Produce runs a produce workload against t and reports throughput and
// per-record acknowledgement latency. The stream is created if missing.
func Produce(ctx context.Context, t Target, cfg ProduceConfig) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := t.CreateStream(ctx, cfg.Stream, cfg.Partitions); err != nil {
		return nil, fmt.Errorf("create stream %q: %w", cfg.Stream, err)
	}
	prods := make([]Producer, 0, cfg.Producers)
	closeAll := func() error {
		var errs []error
		for _, p := range prods {
			errs = append(errs, p.Close())
		}
		prods = nil
		return errors.Join(errs...)
	}
	for range cfg.Producers {
		p, err := t.NewProducer(ctx, cfg.Stream, cfg.Producer)
		if err != nil {
			return nil, errors.Join(err, closeAll())
		}
		prods = append(prods, p)
	}
	values := Payloads(1024, cfg.Size, uint64(cfg.Size))
	ks := keys(1024)
	st := &ackState{hist: NewHistogram()}
	stop := startProgress(cfg.Progress, "produce", &st.acked, cfg.Records)
	start := time.Now()
	runCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for i, p := range prods {
		n := cfg.Records / int64(cfg.Producers)
		if int64(i) < cfg.Records%int64(cfg.Producers) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendLoop(runCtx, p, &cfg, n, i, values, ks, st, &sent)
		}()
	}
	wg.Wait()
	var flushErrs []error
	for _, p := range prods { // wait for the outstanding acknowledgements
		flushErrs = append(flushErrs, p.Flush(ctx))
	}
	elapsed := time.Since(start)
	closeErr := errors.Join(append(flushErrs, closeAll())...)
	stop()
	res := &Result{Workload: produceName(&cfg), Target: t.Name(), Records: st.acked.Load(),
		Bytes: st.acked.Load() * int64(cfg.Size), Elapsed: elapsed, Latency: st.hist}
	switch {
	case st.failed.Load() > 0:
		return res, fmt.Errorf("%d of %d records failed: %w", st.failed.Load(), sent.Load(), st.err)
	case closeErr != nil:
		return res, closeErr
	case ctx.Err() != nil:
		return res, ctx.Err()
	case st.acked.Load() < sent.Load():
		return res, fmt.Errorf("%w: %d of %d records acknowledged", ErrIncomplete, st.acked.Load(), sent.Load())
	}
	return res, nil
}

func produceName(cfg *ProduceConfig) string {
	mode := "async"
	if cfg.Sync {
		mode = "sync"
	}
	return fmt.Sprintf("produce %s %dB", mode, cfg.Size)
}

// sendLoop sends n records (or until ctx ends) from one producer.
func sendLoop(ctx context.Context, p Producer, cfg *ProduceConfig, n int64, id int, values, ks [][]byte, st *ackState, sent *atomic.Int64) {
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Producers) / cfg.Rate)
	}
	begin := time.Now()
	ack := st.ack // one func value for the run, not an allocation per record
	for i := int64(0); i < n; i++ {
		if i&63 == 0 && ctx.Err() != nil {
			return
		}
		if interval > 0 {
			if d := time.Until(begin.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		j := (int(i) + id*31) & 1023
		var key []byte
		if cfg.Keyed {
			key = ks[j]
		}
		sent.Add(1)
		if cfg.Sync {
			start := time.Now()
			err := p.Send(ctx, key, values[j])
			if err != nil && ctx.Err() != nil {
				sent.Add(-1) // cut short by the duration: not a failure
				return
			}
			st.timed(start, err)
			continue
		}
		if i%asyncSampleEvery != 0 {
			p.SendAsync(key, values[j], ack)
			continue
		}
		start := time.Now()
		p.SendAsync(key, values[j], func(err error) { st.timed(start, err) })
	}
}

// ConsumeConfig is a consume workload: read Records stored records.
type ConsumeConfig struct {
	Stream   string
	Records  int64
	Consumer ConsumerOptions
	// Timeout ends the run when no record arrived for this long; default
	// 10 s.
	Timeout  time.Duration
	Progress io.Writer
}

// Consume reads cfg.Records records of the stream from its start (or the
// group's position) and reports the throughput. It does not produce: see
// Fill.
func Consume(ctx context.Context, t Target, cfg ConsumeConfig) (*Result, error) {
	if cfg.Records <= 0 {
		return nil, errors.New("bench: set a number of records")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	c, err := t.NewConsumer(ctx, cfg.Stream, cfg.Consumer)
	if err != nil {
		return nil, err
	}
	var n, bytes atomic.Int64
	stop := startProgress(cfg.Progress, "consume", &n, cfg.Records)
	rctx, cancel := stallContext(ctx, &n, cfg.Timeout)
	start := time.Now()
	var recvErr error
	for n.Load() < cfg.Records {
		if _, err := c.Receive(rctx, func(v []byte) { bytes.Add(int64(len(v))); n.Add(1) }); err != nil {
			recvErr = err
			break
		}
	}
	elapsed := time.Since(start)
	cancel()
	stop()
	closeErr := c.Close()
	res := &Result{Workload: "consume", Target: t.Name(), Records: n.Load(), Bytes: bytes.Load(), Elapsed: elapsed}
	if recvErr != nil {
		return res, fmt.Errorf("%w: consumed %d of %d records: %w", ErrIncomplete, n.Load(), cfg.Records, recvErr)
	}
	return res, closeErr
}

// Fill produces records until the stream holds at least records of them
// (unmeasured set-up for Consume) and returns how many it added.
func Fill(ctx context.Context, t Target, stream string, partitions int, records int64, size int, opts ProducerOptions) (int64, error) {
	if err := t.CreateStream(ctx, stream, partitions); err != nil {
		return 0, err
	}
	have, err := t.StoredRecords(ctx, stream)
	if err != nil {
		return 0, err
	}
	if have >= records {
		return 0, nil
	}
	res, err := Produce(ctx, t, ProduceConfig{Stream: stream, Partitions: partitions, Records: records - have,
		Size: size, Producer: opts})
	if res == nil {
		return 0, err
	}
	return res.Records, err
}

// stallContext returns a context that is cancelled when *n stopped growing
// for d (the run stalled), so the hot loop needs no timer per call.
func stallContext(ctx context.Context, n *atomic.Int64, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		tick := max(d/4, 10*time.Millisecond)
		t := time.NewTicker(tick)
		defer t.Stop()
		last, since := n.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				if c := n.Load(); c != last {
					last, since = c, now
				} else if now.Sub(since) >= d {
					cancel(fmt.Errorf("no record for %v", d))
					return
				}
			}
		}
	}()
	var once sync.Once
	return ctx, func() { once.Do(func() { close(done); cancel(nil) }) }
}
