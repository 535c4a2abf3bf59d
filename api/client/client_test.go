package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

func TestMapError(t *testing.T) {
	notLeader, err := status.New(codes.Unavailable, "broker: not the leader for t/0; leader is n2 at 10.0.0.2:7070").
		WithDetails(&stratav1.NotLeader{LeaderId: "n2", LeaderAddr: "10.0.0.2:7070"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		in        error
		subject   error
		is        []error
		isNot     []error
		retriable bool
	}{
		{"not leader", notLeader.Err(), nil, []error{ErrUnavailable, ErrNotLeader}, []error{ErrNotFound}, true},
		{"unavailable", status.Error(codes.Unavailable, "broker: partition not ready"), nil, []error{ErrUnavailable}, []error{ErrNotLeader}, true},
		{"unknown topic", status.Error(codes.NotFound, `broker: unknown topic: "x"`), nil, []error{ErrNotFound, ErrUnknownTopic}, []error{ErrUnknownPartition}, false},
		{"unknown partition", status.Error(codes.NotFound, "broker: unknown partition: t has 3"), ErrUnknownTopic, []error{ErrNotFound, ErrUnknownPartition}, []error{ErrUnknownTopic}, false},
		{"unknown member", status.Error(codes.NotFound, `broker: unknown group member: "m" in group "g"`), nil, []error{ErrUnknownMember}, []error{ErrUnknownGroup}, false},
		{"bare not found takes the subject", status.Error(codes.NotFound, "gone"), ErrUnknownGroup, []error{ErrNotFound, ErrUnknownGroup}, nil, false},
		{"exists", status.Error(codes.AlreadyExists, "broker: topic already exists"), nil, []error{ErrTopicExists}, nil, false},
		{"too large", status.Error(codes.ResourceExhausted, "broker: record batch too large"), nil, []error{ErrTooLarge}, nil, false},
		{"out of range", status.Error(codes.OutOfRange, "broker: offset out of range"), nil, []error{ErrOffsetOutOfRange}, nil, false},
		{"stale generation", status.Error(codes.FailedPrecondition, "broker: stale group generation: commit from 3"), nil, []error{ErrFailedPrecondition, ErrStaleGeneration}, nil, false},
		{"out of order", status.Error(codes.FailedPrecondition, "cluster: out of order sequence from producer 4: got 9, expected 5"), nil, []error{ErrOutOfOrderSequence}, []error{ErrStaleGeneration}, false},
		{"group not empty", status.Error(codes.FailedPrecondition, "broker: group has live members"), nil, []error{ErrGroupNotEmpty}, nil, false},
		{"invalid", status.Error(codes.InvalidArgument, "broker: invalid name"), nil, []error{ErrInvalidArgument}, nil, false},
		{"canceled", status.Error(codes.Canceled, "bye"), nil, []error{context.Canceled}, nil, false},
		{"deadline", status.Error(codes.DeadlineExceeded, "slow"), nil, []error{context.DeadlineExceeded}, nil, false},
		{"not a status", errors.New("boom"), nil, nil, []error{ErrUnavailable}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.in, tt.subject)
			for _, want := range tt.is {
				if !errors.Is(got, want) {
					t.Errorf("%v is not %v", got, want)
				}
			}
			for _, not := range tt.isNot {
				if errors.Is(got, not) {
					t.Errorf("%v is %v", got, not)
				}
			}
			if retriable(got) != tt.retriable {
				t.Errorf("retriable = %v", retriable(got))
			}
			wrapped := fmt.Errorf("context: %w", got)
			if retriable(wrapped) != tt.retriable {
				t.Errorf("retriable through a wrap = %v", retriable(wrapped))
			}
		})
	}
	e := mapError(notLeader.Err(), nil)
	if leaderHint(e) != "10.0.0.2:7070" {
		t.Errorf("leader hint %q", leaderHint(e))
	}
	if st, ok := status.FromError(e); !ok || st.Code() != codes.Unavailable {
		t.Errorf("status.FromError on a client error: %v %v", st, ok)
	}
	if responseError(0, "", nil) != nil {
		t.Error("code 0 is not an error")
	}
	if err := responseError(int32(codes.FailedPrecondition), "cluster: out of order sequence from producer 1: got 3, expected 1", nil); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("response error %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default client config: %v", err)
	}
	if err := DefaultProducerConfig().Validate(); err != nil {
		t.Errorf("default producer config: %v", err)
	}
	if err := DefaultConsumerConfig().Validate(); err != nil {
		t.Errorf("default consumer config: %v", err)
	}
	bad := []struct {
		name string
		err  error
	}{
		{"client retries", func() Config { c := DefaultConfig(); c.MaxRetries = -1; return c }().Validate()},
		{"client backoff", func() Config { c := DefaultConfig(); c.MaxRetryBackoff = time.Millisecond; return c }().Validate()},
		{"batch bytes", func() ProducerConfig { c := DefaultProducerConfig(); c.BatchBytes = 0; return c }().Validate()},
		{"in flight", func() ProducerConfig { c := DefaultProducerConfig(); c.MaxInFlight = 6; return c }().Validate()},
		{"codec", func() ProducerConfig { c := DefaultProducerConfig(); c.Compression = 9; return c }().Validate()},
		{"id without idempotence", func() ProducerConfig {
			c := DefaultProducerConfig()
			c.ProducerID, c.DisableIdempotence = 5, true
			return c
		}().Validate()},
		{"topics without group", func() ConsumerConfig { c := DefaultConsumerConfig(); c.Topics = []string{"t"}; return c }().Validate()},
		{"fetch bytes", func() ConsumerConfig { c := DefaultConsumerConfig(); c.FetchMaxBytes = 0; return c }().Validate()},
	}
	for _, b := range bad {
		if !errors.Is(b.err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", b.name, b.err)
		}
	}
	c := DefaultProducerConfig()
	c.DisableIdempotence, c.MaxInFlight = true, 20
	if err := c.Validate(); err != nil {
		t.Errorf("20 in flight without idempotence: %v", err)
	}
}

func TestBackoffDelay(t *testing.T) {
	for attempt := 0; attempt < 70; attempt++ {
		d := backoffDelay(50*time.Millisecond, 2*time.Second, attempt)
		want := min(50*time.Millisecond<<min(attempt, 20), 2*time.Second)
		if d > want || d < want*4/5 {
			t.Fatalf("attempt %d: %v, want within [%v, %v]", attempt, d, want*4/5, want)
		}
	}
}

// testProducer is a Producer without goroutines, for its routing rules.
func testProducer(cfg ProducerConfig, partitions int) (*Producer, *topicState) {
	p := &Producer{cfg: cfg, lim: partLimits{batchBytes: cfg.BatchBytes, linger: cfg.Linger, maxInFlight: 5,
		backoff: func(int) time.Duration { return time.Second }}, topics: map[string]*topicState{}}
	ts := &topicState{name: "t", sticky: -1, parts: make([]*partState, partitions)}
	for i := range ts.parts {
		ts.parts[i] = &partState{tp: TopicPartition{"t", int32(i)}, idempotent: true}
	}
	p.topics["t"] = ts
	return p, ts
}

func TestPartitioning(t *testing.T) {
	cfg := DefaultProducerConfig()
	t.Run("key", func(t *testing.T) {
		p, ts := testProducer(cfg, 12)
		for _, k := range []string{"foobar", "kafka", "", "user-42"} {
			p.routeLocked(ts, record.Record{Key: []byte(k)}, nil, 0, false, t0)
			want := record.KeyPartition([]byte(k), 12)
			if n := len(ts.parts[want].recs); n != 1 {
				t.Fatalf("key %q: partition %d holds %d records", k, want, n)
			}
			ts.parts[want].recs = nil
		}
	})
	t.Run("explicit wins", func(t *testing.T) {
		p, ts := testProducer(cfg, 4)
		p.routeLocked(ts, record.Record{Key: []byte("foobar")}, nil, 3, true, t0)
		if len(ts.parts[3].recs) != 1 {
			t.Fatal("explicit partition ignored")
		}
		c, _ := p.routeLocked(ts, record.Record{}, nil, 4, true, t0)
		if c == nil || !errors.Is(c.err, ErrUnknownPartition) {
			t.Fatalf("partition 4 of 4: %+v", c)
		}
	})
	t.Run("round robin", func(t *testing.T) {
		c := cfg
		c.Partitioning = RoundRobin
		p, ts := testProducer(c, 3)
		for range 9 {
			p.routeLocked(ts, record.Record{}, nil, 0, false, t0)
		}
		for i, ps := range ts.parts {
			if len(ps.recs) != 3 {
				t.Fatalf("partition %d holds %d records, want 3", i, len(ps.recs))
			}
		}
	})
	t.Run("sticky", func(t *testing.T) {
		c := cfg
		c.BatchBytes = 1000
		p, ts := testProducer(c, 3)
		count := func(ps *partState) int {
			n := len(ps.recs)
			for _, b := range ps.queue {
				n += len(b.recs)
			}
			return n
		}
		var order []int
		for range 24 { // 8 records of 100 bytes fill a batch
			before := make([]int, len(ts.parts))
			for i, ps := range ts.parts {
				before[i] = count(ps)
			}
			p.routeLocked(ts, record.Record{Value: make([]byte, 100)}, nil, 0, false, t0)
			for i, ps := range ts.parts {
				if count(ps) > before[i] && (len(order) == 0 || order[len(order)-1] != i) {
					order = append(order, i)
				}
			}
		}
		if fmt.Sprint(order) != "[0 1 2]" {
			t.Fatalf("sticky partitions in order %v, want [0 1 2]", order)
		}
		for i, ps := range ts.parts {
			if len(ps.queue)+len(ps.recs) == 0 {
				t.Fatalf("partition %d never used", i)
			}
		}
	})
}

func TestFetchesAndMaxPoll(t *testing.T) {
	co := &Consumer{cfg: DefaultConsumerConfig(), parts: map[TopicPartition]*partFetch{}, notify: make(chan struct{})}
	co.cfg.MaxPollRecords = 5
	mk := func(tp TopicPartition, first int64, n int) *partFetch {
		f := &partFetch{tp: tp, pos: first, taken: make(chan struct{}, 1)}
		fp := &FetchPartition{Topic: tp.Topic, Partition: tp.Partition}
		for i := range n {
			fp.Records = append(fp.Records, record.Record{Offset: first + int64(i)})
		}
		f.ready = fp
		co.parts[tp] = f
		return f
	}
	a := mk(TopicPartition{"a", 0}, 10, 3)
	b := mk(TopicPartition{"b", 1}, 100, 4)
	out, err := co.takeLocked()
	if err != nil || out.NumRecords() != 5 {
		t.Fatalf("first poll: %d records, %v", out.NumRecords(), err)
	}
	var got []string
	for tp, r := range out.All() {
		got = append(got, fmt.Sprintf("%s@%d", tp, r.Offset))
	}
	if fmt.Sprint(got) != "[a/0@10 a/0@11 a/0@12 b/1@100 b/1@101]" {
		t.Fatalf("records %v", got)
	}
	if a.pos != 13 || b.pos != 102 || a.ready != nil || b.ready == nil || len(b.ready.Records) != 2 {
		t.Fatalf("positions a %d b %d, b left %v", a.pos, b.pos, b.ready)
	}
	if len(a.taken) != 1 || len(b.taken) != 0 {
		t.Fatal("only a fully taken fetch frees its fetcher")
	}
	out, _ = co.takeLocked()
	if out.NumRecords() != 2 || b.pos != 104 || b.ready != nil {
		t.Fatalf("second poll: %d records, b at %d", out.NumRecords(), b.pos)
	}
}

func TestSetMembership(t *testing.T) {
	co := &Consumer{cfg: DefaultConsumerConfig(), parts: map[TopicPartition]*partFetch{}, notify: make(chan struct{})}
	tp := func(p int32) *stratav1.TopicPartition { return &stratav1.TopicPartition{Topic: "t", Partition: p} }
	co.setMembership("m1", 1, []*stratav1.TopicPartition{tp(1), tp(0)})
	if co.pending == nil || co.pending.gen != 1 || fmt.Sprint(co.pending.parts) != "[t/0 t/1]" {
		t.Fatalf("pending %+v", co.pending)
	}
	m := co.pending
	co.setMembership("m1", 1, []*stratav1.TopicPartition{tp(0), tp(1)})
	if co.pending != m {
		t.Fatal("the same membership replaced the pending one")
	}
	co.setMembership("m1", 2, []*stratav1.TopicPartition{tp(0)})
	if co.pending.gen != 2 || len(co.pending.parts) != 1 || co.gen != 2 {
		t.Fatalf("a new generation was not recorded: %+v", co.pending)
	}
	// Once applied, a heartbeat with the same partitions changes only the
	// generation.
	co.pending = nil
	co.assigned = true
	co.parts[TopicPartition{"t", 0}] = &partFetch{}
	co.setMembership("m1", 3, []*stratav1.TopicPartition{tp(0)})
	if co.pending != nil || co.gen != 3 {
		t.Fatalf("pending %+v, generation %d", co.pending, co.gen)
	}
	co.setMembership("m2", 4, nil)
	if co.pending == nil || len(co.pending.parts) != 0 || co.memberID != "m2" {
		t.Fatalf("losing every partition is a change: %+v", co.pending)
	}
}

// unreachable returns an address where nothing listens.
func unreachable(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestDialUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, []string{unreachable(t)}, WithRetries(0, time.Millisecond))
	if !errors.Is(err, ErrNoBrokers) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrNoBrokers and ErrUnavailable", err)
	}
	if _, err := Dial(ctx, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no brokers: %v", err)
	}
}

// offlineClient is a Client whose only broker does not answer, as Dial
// would leave it after the broker went away.
func offlineClient(t *testing.T) *Client {
	t.Helper()
	cfg := DefaultConfig()
	cfg.MaxRetries, cfg.RetryBackoff, cfg.MaxRetryBackoff = 0, time.Millisecond, time.Millisecond
	c := &Client{cfg: cfg, log: discard, bootstrap: []string{unreachable(t)},
		conns: map[string]*grpc.ClientConn{}, nodes: map[string]string{}, topics: map[string]*topicMeta{}}
	c.dialOpts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// TestProducerNothingDropped: with the broker gone, every record still
// gets exactly one callback, with an error; Produce and Close return.
func TestProducerNothingDropped(t *testing.T) {
	c := offlineClient(t)
	cfg := DefaultProducerConfig()
	cfg.DisableIdempotence = true
	cfg.MaxRetries, cfg.RetryBackoff, cfg.MaxRetryBackoff = 0, time.Millisecond, time.Millisecond
	p, err := NewProducer(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[int]error{}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		p.ProduceAsync(&Record{Topic: "t", Value: []byte{byte(i)}}, func(_ Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := got[i]; dup {
				t.Errorf("record %d called back twice", i)
			}
			got[i] = err
			wg.Done()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	wg.Wait()
	for i, err := range got {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("record %d: %v, want ErrUnavailable", i, err)
		}
	}
	if _, err := p.Produce(ctx, &Record{Topic: "t"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Produce: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Produce(ctx, &Record{Topic: "t"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Produce after Close: %v", err)
	}
}

// TestProducerCloseFailsBuffered: records that cannot be delivered before
// CloseTimeout get ErrClosed.
func TestProducerCloseFailsBuffered(t *testing.T) {
	c := offlineClient(t)
	cfg := DefaultProducerConfig()
	cfg.CloseTimeout = 50 * time.Millisecond
	cfg.RetryBackoff, cfg.MaxRetryBackoff = time.Hour, time.Hour // the producer id never comes
	p, err := NewProducer(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	for range 10 {
		p.ProduceAsync(&Record{Topic: "t", Value: []byte("v")}, func(_ Result, err error) { errs <- err })
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close: %v, want ErrClosed", err)
	}
	for range 10 {
		if err := <-errs; err == nil {
			t.Fatal("a record succeeded with no broker")
		}
	}
	if _, err := p.ProducerID(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("ProducerID after Close without an id: %v", err)
	}
}

func TestConsumerOffline(t *testing.T) {
	c := offlineClient(t)
	co, err := NewConsumer(c, DefaultConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Assign(AtCommitted(), TopicPartition{"t", 0}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("AtCommitted without a group: %v", err)
	}
	if err := co.Assign(AtOffset(5), TopicPartition{"t", 0}); err != nil {
		t.Fatal(err)
	}
	if pos, ok := co.Position(TopicPartition{"t", 0}); !ok || pos != 5 {
		t.Fatalf("position %d %v", pos, ok)
	}
	if err := co.Seek(TopicPartition{"t", 1}, AtStart()); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("Seek unassigned: %v", err)
	}
	if err := co.Commit(context.Background()); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("Commit without a group: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := co.Poll(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll: %v", err)
	}
	if err := co.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := co.Poll(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Poll after Close: %v", err)
	}
}
