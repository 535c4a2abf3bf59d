package client

import (
	"context"
	"errors"
	"io"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// prodStream is one ProduceStream to a broker. Requests are sent by its
// sender goroutine in the order they were queued and answered by the
// broker in order per partition; its receiver goroutine matches answers
// to batches by correlation id. When the stream breaks, every batch in
// flight on it fails with a retriable error and the stream is dropped; the
// loop opens a new one when it needs to.
type prodStream struct {
	p      *Producer
	addr   string
	stream stratav1.Strata_ProduceStreamClient
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: requests are queued

	// Guarded by p.mu.
	pending map[uint64]inflightRef
	sendq   []*stratav1.ProduceRequest
	broken  bool
}

type inflightRef struct {
	ps *partState
	b  *batch
}

// stream returns the live stream to addr, opening one if needed. Opening
// happens without p.mu held.
func (p *Producer) stream(addr string) (*prodStream, error) {
	p.mu.Lock()
	s := p.streams[addr]
	p.mu.Unlock()
	if s != nil {
		return s, nil
	}
	stub, err := p.c.stub(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(p.ctx)
	st, err := stub.ProduceStream(ctx)
	if err != nil {
		cancel()
		return nil, errStreamBroken(addr, err)
	}
	s = &prodStream{p: p, addr: addr, stream: st, cancel: cancel, wake: make(chan struct{}, 1), pending: map[uint64]inflightRef{}}
	p.mu.Lock()
	if p.ctx.Err() != nil {
		p.mu.Unlock()
		cancel()
		return nil, ErrClosed
	}
	p.streams[addr] = s
	p.wg.Add(2)
	p.mu.Unlock()
	go s.sendLoop()
	go s.recvLoop()
	return s, nil
}

// enqueueLocked queues b's request. Caller must hold p.mu.
func (s *prodStream) enqueueLocked(corr uint64, ps *partState, b *batch) {
	s.pending[corr] = inflightRef{ps: ps, b: b}
	s.sendq = append(s.sendq, &stratav1.ProduceRequest{
		Topic: ps.tp.Topic, Partition: ps.tp.Partition, Batch: b.data, CorrelationId: corr,
	})
}

func (s *prodStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sendLoop sends queued requests. A batch's bytes do not change while it
// is in flight, so they are read here without the lock.
func (s *prodStream) sendLoop() {
	defer s.p.wg.Done()
	ctx := s.stream.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.p.mu.Lock()
		q := s.sendq
		s.sendq = nil
		s.p.mu.Unlock()
		for _, req := range q {
			if err := s.stream.Send(req); err != nil {
				if !errors.Is(err, io.EOF) {
					s.fail(err)
				}
				// On io.EOF the stream ended and recvLoop reads why.
				return
			}
		}
	}
}

// recvLoop matches answers to batches.
func (s *prodStream) recvLoop() {
	defer s.p.wg.Done()
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		s.p.onResponse(s, resp)
	}
}

// fail drops the stream and fails its batches in flight (retriably).
func (s *prodStream) fail(err error) {
	p := s.p
	now := time.Now()
	p.mu.Lock()
	if s.broken {
		p.mu.Unlock()
		return
	}
	s.broken = true
	if p.streams[s.addr] == s {
		delete(p.streams, s.addr)
	}
	s.sendq = nil
	ferr := errStreamBroken(s.addr, err)
	if p.ctx.Err() == nil {
		p.log.Warn("produce stream broke", "addr", s.addr, "err", err, "in_flight", len(s.pending))
	}
	var out []completion
	for corr, ref := range s.pending {
		delete(s.pending, corr)
		if p.failLandedLocked(ref.ps, ref.b, ferr) {
			continue
		}
		out = append(out, ref.ps.onFail(ref.b, ferr, 0, now, &p.lim)...)
		p.c.invalidate(ref.ps.tp.Topic)
	}
	p.completeLocked(out)
	p.mu.Unlock()
	s.cancel()
	p.signal()
}

// onResponse applies one answer.
func (p *Producer) onResponse(s *prodStream, resp *stratav1.ProduceResponse) {
	now := time.Now()
	p.mu.Lock()
	ref, ok := s.pending[resp.GetCorrelationId()]
	if !ok {
		p.mu.Unlock()
		p.log.Warn("answer to an unknown produce request", "addr", s.addr, "correlation_id", resp.GetCorrelationId())
		return
	}
	delete(s.pending, resp.GetCorrelationId())
	var out []completion
	switch err := responseError(resp.GetErrorCode(), resp.GetErrorMessage(), resp.GetErrorInfo()); {
	case err == nil:
		out = ref.ps.onAck(ref.b, resp.GetBaseOffset(), resp.GetDuplicate())
	case p.failLandedLocked(ref.ps, ref.b, err):
	default:
		if retriable(err) {
			p.c.invalidate(ref.ps.tp.Topic)
		}
		if !errors.Is(err, ErrOutOfOrderSequence) || wireSeq(ref.b.baseSeq) != resp.GetExpectedSequence() {
			p.log.Debug("produce failed", "partition", ref.ps.tp, "seq", ref.b.baseSeq, "err", err,
				"expected_sequence", resp.GetExpectedSequence())
		}
		out = ref.ps.onFail(ref.b, err, resp.GetExpectedSequence(), now, &p.lim)
	}
	p.completeLocked(out)
	p.mu.Unlock()
	p.signal()
}
