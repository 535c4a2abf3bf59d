package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// Consumer reads records from partitions, standalone or as a member of a
// stream group. Poll is meant for one goroutine; the other methods are
// safe to call from any.
//
// Goroutines: one fetcher per assigned partition and, in a group, one
// goroutine for heartbeats and auto-commits. Close waits for all of them.
// Lock order: Consumer.mu, then Client.mu; Consumer.mu is never held
// across RPCs or callbacks.
type Consumer struct {
	c      *Client
	cfg    ConsumerConfig
	log    *slog.Logger
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex // guards the fields below
	closed    bool
	parts     map[TopicPartition]*partFetch
	notify    chan struct{}            // closed and replaced when Poll has something new
	committed map[TopicPartition]int64 // what this consumer last committed
	memberID  string
	gen       int32
	joined    bool        // the group gave this consumer a member id
	assigned  bool        // Poll applied a membership
	pending   *membership // an assignment to apply at the next Poll
	groupErr  error       // a failure to join, reported once by Poll

	closeOnce sync.Once
	closeErr  error
}

// FetchPartition is what one Poll returns for one partition.
type FetchPartition struct {
	Topic     string
	Partition int32
	// Records are in offset order. Their Key, Value and header values
	// alias the fetched bytes, which the consumer never reuses: they stay
	// valid as long as the application keeps them.
	Records []record.Record
	// HighWatermark is the partition's end when the records were fetched:
	// HighWatermark - (last offset + 1) records are left to read.
	HighWatermark int64
}

// Fetches is the result of a Poll, grouped by partition.
type Fetches []FetchPartition

// NumRecords returns the number of records.
func (f Fetches) NumRecords() int {
	n := 0
	for i := range f {
		n += len(f[i].Records)
	}
	return n
}

// All iterates over every record with its partition, partition by
// partition, each in offset order.
func (f Fetches) All() iter.Seq2[TopicPartition, *record.Record] {
	return func(yield func(TopicPartition, *record.Record) bool) {
		for i := range f {
			tp := TopicPartition{f[i].Topic, f[i].Partition}
			for j := range f[i].Records {
				if !yield(tp, &f[i].Records[j]) {
					return
				}
			}
		}
	}
}

// partFetch is one assigned partition.
type partFetch struct {
	tp TopicPartition
	// pos is the offset after the last record Poll returned (or where the
	// fetcher started); -1 until known.
	pos int64
	// polled is pos as of the start of the latest Poll: what the
	// application had finished with when it asked for more. Auto-commit
	// commits it.
	polled int64
	gen    int // bumped by Seek: answers of an older fetcher are dropped
	stop   context.CancelFunc
	ready  *FetchPartition // fetched, waiting for Poll
	taken  chan struct{}   // cap 1: Poll took ready
	err    error           // a failure to report at the next Poll
}

// NewConsumer returns a consumer reading through c. A group member joins
// its group in the background; its first Poll waits for the assignment.
func NewConsumer(c *Client, cfg ConsumerConfig) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	co := &Consumer{
		c: c, cfg: cfg, log: loggerOr(cfg.Logger), ctx: ctx, cancel: cancel,
		parts:     map[TopicPartition]*partFetch{},
		notify:    make(chan struct{}),
		committed: map[TopicPartition]int64{},
	}
	if cfg.member() {
		co.wg.Add(1)
		go co.groupLoop()
	}
	return co, nil
}

// Assign adds partitions to a standalone consumer, each read from at. A
// partition already assigned moves to at.
func (co *Consumer) Assign(at Offset, parts ...TopicPartition) error {
	if co.cfg.member() {
		return fmt.Errorf("%w: a group member's partitions come from its group", ErrInvalidArgument)
	}
	if at.kind == offsetCommitted && co.cfg.Group == "" {
		return fmt.Errorf("%w: AtCommitted needs ConsumerConfig.Group", ErrInvalidArgument)
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.closed {
		return ErrClosed
	}
	for _, tp := range parts {
		co.startLocked(tp, at)
	}
	return nil
}

// Unassign stops reading partitions of a standalone consumer.
func (co *Consumer) Unassign(parts ...TopicPartition) {
	co.mu.Lock()
	defer co.mu.Unlock()
	for _, tp := range parts {
		co.dropLocked(tp)
	}
}

// Assignment returns the partitions the consumer reads, sorted.
func (co *Consumer) Assignment() []TopicPartition {
	co.mu.Lock()
	defer co.mu.Unlock()
	return sortedParts(slices.Collect(maps.Keys(co.parts)))
}

// Seek moves an assigned partition to at; the next records Poll returns
// for it start there.
func (co *Consumer) Seek(tp TopicPartition, at Offset) error {
	if at.kind == offsetCommitted && co.cfg.Group == "" {
		return fmt.Errorf("%w: AtCommitted needs ConsumerConfig.Group", ErrInvalidArgument)
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.closed {
		return ErrClosed
	}
	if co.parts[tp] == nil {
		return fmt.Errorf("%w: %s", ErrNotAssigned, tp)
	}
	co.startLocked(tp, at)
	return nil
}

// Position returns the offset after the last record Poll returned for tp
// (or where reading starts), and false when it is not known yet.
func (co *Consumer) Position(tp TopicPartition) (int64, bool) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if f := co.parts[tp]; f != nil && f.pos >= 0 {
		return f.pos, true
	}
	return 0, false
}

// startLocked (re)starts the fetcher of tp at at. Caller must hold co.mu.
func (co *Consumer) startLocked(tp TopicPartition, at Offset) {
	f := co.parts[tp]
	if f == nil {
		f = &partFetch{tp: tp, pos: -1, polled: -1, taken: make(chan struct{}, 1)}
		co.parts[tp] = f
	} else {
		f.stop()
		f.gen++
		f.ready, f.err = nil, nil
	}
	f.pos, f.polled = -1, -1
	if at.kind == offsetExact {
		f.pos, f.polled = at.offset, at.offset
	}
	ctx, cancel := context.WithCancel(co.ctx)
	f.stop = cancel
	co.wg.Add(1)
	go co.fetchLoop(ctx, f, f.gen, at)
}

// dropLocked stops reading tp. Caller must hold co.mu.
func (co *Consumer) dropLocked(tp TopicPartition) {
	if f := co.parts[tp]; f != nil {
		f.stop()
		f.gen++
		delete(co.parts, tp)
	}
}

// broadcastLocked wakes Poll. Caller must hold co.mu.
func (co *Consumer) broadcastLocked() {
	close(co.notify)
	co.notify = make(chan struct{})
}

// Poll returns the records fetched since the last Poll, waiting until
// there are some, ctx ends, or the consumer closes. The positions of the
// partitions move past the returned records. A partition whose fetching
// failed for good is reported in the error (joined with the others) and
// is not read further until Seek; records of other partitions may come
// with such an error.
//
// In a group, Poll first applies an assignment change: it calls OnRevoke,
// commits the revoked partitions (with AutoCommit), stops their fetchers,
// starts the new ones and calls OnAssign.
func (co *Consumer) Poll(ctx context.Context) (Fetches, error) {
	for {
		co.mu.Lock()
		if co.closed {
			co.mu.Unlock()
			return nil, ErrClosed
		}
		if m := co.pending; m != nil {
			co.pending = nil
			co.mu.Unlock()
			co.apply(ctx, m)
			continue
		}
		for _, f := range co.parts {
			f.polled = f.pos
		}
		out, err := co.takeLocked()
		ch := co.notify
		co.mu.Unlock()
		if len(out) > 0 || err != nil {
			return out, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-co.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// takeLocked collects what the fetchers handed over, up to
// MaxPollRecords, and moves the positions. Caller must hold co.mu.
func (co *Consumer) takeLocked() (Fetches, error) {
	var out Fetches
	var errs []error
	if co.groupErr != nil {
		errs = append(errs, co.groupErr)
		co.groupErr = nil
	}
	budget := co.cfg.MaxPollRecords
	for _, tp := range sortedParts(slices.Collect(maps.Keys(co.parts))) {
		f := co.parts[tp]
		if f.err != nil {
			errs = append(errs, f.err)
			f.err = nil
		}
		r := f.ready
		if r == nil || (co.cfg.MaxPollRecords > 0 && budget == 0) {
			continue
		}
		fp := *r
		if co.cfg.MaxPollRecords > 0 && len(fp.Records) > budget {
			fp.Records = fp.Records[:budget:budget]
			r.Records = r.Records[budget:]
		} else {
			f.ready = nil
			select {
			case f.taken <- struct{}{}:
			default:
			}
		}
		budget -= len(fp.Records)
		f.pos = fp.Records[len(fp.Records)-1].Offset + 1
		out = append(out, fp)
	}
	return out, errors.Join(errs...)
}

// Commit commits the position of every assigned partition that moved
// since the last commit: the offset after the last record Poll returned.
func (co *Consumer) Commit(ctx context.Context) error {
	co.mu.Lock()
	offs := map[TopicPartition]int64{}
	for tp, f := range co.parts {
		if f.pos >= 0 {
			offs[tp] = f.pos
		}
	}
	co.mu.Unlock()
	return co.commit(ctx, offs)
}

// CommitOffsets commits the given next-offsets-to-consume for the
// consumer's group.
func (co *Consumer) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	return co.commit(ctx, offsets)
}

// commit sends the offsets that differ from what was last committed. A
// member whose generation went stale (the group rebalanced since its last
// heartbeat) learns the new one and commits again the partitions it still
// holds.
func (co *Consumer) commit(ctx context.Context, offsets map[TopicPartition]int64) error {
	if co.cfg.Group == "" {
		return ErrNoGroup
	}
	req := co.commitRequest(offsets, nil)
	if len(req.Offsets) == 0 {
		return nil
	}
	err := co.sendCommit(ctx, req)
	if err != nil && co.cfg.member() && errors.Is(err, ErrStaleGeneration) && co.refreshGeneration(ctx) {
		co.mu.Lock()
		held := map[TopicPartition]bool{}
		if co.pending != nil {
			for _, tp := range co.pending.parts {
				held[tp] = true
			}
		} else {
			for tp := range co.parts {
				held[tp] = true
			}
		}
		co.mu.Unlock()
		if req = co.commitRequest(offsets, held); len(req.Offsets) == 0 {
			return err
		}
		err = co.sendCommit(ctx, req)
	}
	if err != nil {
		return fmt.Errorf("client: commit %d offsets of group %q: %w", len(req.Offsets), co.cfg.Group, err)
	}
	co.mu.Lock()
	for _, o := range req.Offsets {
		co.committed[TopicPartition{o.Topic, o.Partition}] = o.Offset
	}
	co.mu.Unlock()
	return nil
}

// commitRequest builds a commit of the offsets that changed (and, when
// held is not nil, of the partitions in it).
func (co *Consumer) commitRequest(offsets map[TopicPartition]int64, held map[TopicPartition]bool) *stratav1.CommitOffsetsRequest {
	co.mu.Lock()
	defer co.mu.Unlock()
	req := &stratav1.CommitOffsetsRequest{Group: co.cfg.Group}
	if co.cfg.member() {
		req.MemberId, req.Generation = co.memberID, co.gen
	}
	for _, tp := range sortedParts(slices.Collect(maps.Keys(offsets))) {
		o := offsets[tp]
		if last, ok := co.committed[tp]; (ok && last == o) || (held != nil && !held[tp]) {
			continue
		}
		req.Offsets = append(req.Offsets, &stratav1.PartitionOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
	}
	return req
}

func (co *Consumer) sendCommit(ctx context.Context, req *stratav1.CommitOffsetsRequest) error {
	return co.c.callAny(ctx, ErrUnknownGroup, func(ctx context.Context, s stratav1.StrataClient) error {
		_, err := s.CommitOffsets(ctx, req)
		return err
	})
}

// Close stops fetching; in a group it commits the positions (with
// AutoCommit) and leaves the group. It is idempotent and does not close
// the Client.
func (co *Consumer) Close() error {
	co.closeOnce.Do(func() {
		co.mu.Lock()
		co.closed = true
		offs := map[TopicPartition]int64{}
		for tp, f := range co.parts {
			if f.pos >= 0 {
				offs[tp] = f.pos
			}
		}
		co.broadcastLocked()
		co.mu.Unlock()
		co.cancel()
		co.wg.Wait()

		ctx, cancel := context.WithTimeout(context.Background(), co.cfg.CloseTimeout)
		defer cancel()
		var errs []error
		if co.cfg.Group != "" && co.cfg.AutoCommit {
			if err := co.commit(ctx, offs); err != nil {
				errs = append(errs, err)
			}
		}
		co.mu.Lock()
		member, joined := co.memberID, co.joined
		co.mu.Unlock()
		if co.cfg.member() && joined {
			err := co.c.callAny(ctx, ErrUnknownGroup, func(ctx context.Context, s stratav1.StrataClient) error {
				_, err := s.LeaveGroup(ctx, &stratav1.LeaveGroupRequest{Group: co.cfg.Group, MemberId: member})
				return err
			})
			if err != nil && !errors.Is(err, ErrNotFound) {
				errs = append(errs, fmt.Errorf("client: leave group %q: %w", co.cfg.Group, err))
			}
		}
		co.closeErr = errors.Join(errs...)
	})
	return co.closeErr
}

// sortedParts sorts partitions by topic, then number.
func sortedParts(tps []TopicPartition) []TopicPartition {
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return tps
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
