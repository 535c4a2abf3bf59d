package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// e2eHeader is the bytes at the start of an e2e value: the run id, then
// the send time in nanoseconds since the run started (monotonic clock).
const e2eHeader = 16

// E2EConfig is a produce-to-consume latency workload.
type E2EConfig struct {
	Stream     string
	Partitions int
	Records    int64
	// Size is the value size, at least 16 bytes (run id and send time).
	Size int
	// Rate bounds the records per second; 0 sends as fast as acknowledged
	// (latency then includes queueing).
	Rate     float64
	Producer ProducerOptions
	// Timeout ends the run when no record arrived for this long; default
	// 10 s.
	Timeout  time.Duration
	Progress io.Writer
}

// E2E starts a consumer at the end of the stream, produces records that
// carry their send time and reports, per record, the time from the send
// to the moment the consumer received it (same process, same monotonic
// clock).
func E2E(ctx context.Context, t Target, cfg E2EConfig) (*Result, error) {
	if cfg.Size < e2eHeader {
		return nil, fmt.Errorf("bench: e2e needs --size ≥ %d (it carries the send time)", e2eHeader)
	}
	if cfg.Records <= 0 {
		return nil, errors.New("bench: set a number of records")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 1
	}
	if err := t.CreateStream(ctx, cfg.Stream, cfg.Partitions); err != nil {
		return nil, err
	}
	c, err := t.NewConsumer(ctx, cfg.Stream, ConsumerOptions{FromEnd: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	p, err := t.NewProducer(ctx, cfg.Stream, cfg.Producer)
	if err != nil {
		return nil, err
	}
	var runID [8]byte
	_, _ = rand.Read(runID[:])
	base := time.Now()
	hist := NewHistogram()
	var got, bytes atomic.Int64
	var last time.Duration
	recvDone := make(chan error, 1)
	go func() {
		defer close(recvDone)
		rctx, cancel := stallContext(ctx, &got, cfg.Timeout)
		defer cancel()
		for got.Load() < cfg.Records {
			_, err := c.Receive(rctx, func(v []byte) {
				if len(v) < e2eHeader || string(v[:8]) != string(runID[:]) {
					return // a record of another run
				}
				now := time.Since(base)
				hist.Record(now - time.Duration(binary.BigEndian.Uint64(v[8:16])))
				bytes.Add(int64(len(v)))
				got.Add(1)
				last = now
			})
			if err != nil {
				recvDone <- err
				return
			}
		}
	}()
	stop := startProgress(cfg.Progress, "e2e", &got, cfg.Records)
	var acks firstError
	ctxErr := e2eSend(ctx, p, &cfg, runID, base, &acks)
	closeErr := p.Close() // waits for every acknowledgement
	recvErr := <-recvDone
	stop()
	res := &Result{Workload: fmt.Sprintf("e2e %dB", cfg.Size), Target: t.Name(), Records: got.Load(),
		Bytes: bytes.Load(), Elapsed: last, Latency: hist}
	if recvErr != nil {
		recvErr = fmt.Errorf("%w: received %d of %d records: %w", ErrIncomplete, got.Load(), cfg.Records, recvErr)
	}
	return res, errors.Join(ctxErr, acks.get(), closeErr, recvErr)
}

// e2eSend sends the records at the configured rate, each with its send
// time; failed acknowledgements go to acks.
func e2eSend(ctx context.Context, p Producer, cfg *E2EConfig, runID [8]byte, base time.Time, acks *firstError) error {
	values := Payloads(1024, cfg.Size, uint64(cfg.Size))
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	for i := int64(0); i < cfg.Records; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if interval > 0 {
			if d := time.Until(base.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		// A fresh value each time: the client keeps it until acknowledged.
		v := make([]byte, cfg.Size)
		copy(v, values[i&1023])
		copy(v, runID[:])
		binary.BigEndian.PutUint64(v[8:16], uint64(time.Since(base)))
		p.SendAsync(nil, v, acks.set)
	}
	return nil
}

// firstError keeps the first non-nil error given to set.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	if err == nil {
		return
	}
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
