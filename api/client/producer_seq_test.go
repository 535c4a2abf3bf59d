package client_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// seqTestEnv is a client and a one-partition topic of the test's own on
// the package's broker.
type seqTestEnv struct {
	t     *testing.T
	ctx   context.Context
	c     *client.Client
	topic string
}

func newSeqTestEnv(t *testing.T, prefix string) *seqTestEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	topic := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) // a topic of its own with -count
	if _, err := client.NewAdmin(c).CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	return &seqTestEnv{t: t, ctx: ctx, c: c, topic: topic}
}

func (e *seqTestEnv) producer(cfg client.ProducerConfig, startSeq int32) *client.Producer {
	e.t.Helper()
	p, err := client.NewProducer(e.c, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	client.SetStartSequence(p, startSeq)
	e.t.Cleanup(func() { p.Close() })
	return p
}

// produceSync produces each value alone (a batch each, with Linger 0) and
// checks whether the broker answered duplicates.
func (e *seqTestEnv) produceSync(p *client.Producer, dup bool, vals ...string) {
	e.t.Helper()
	for _, v := range vals {
		r, err := p.Produce(e.ctx, &client.Record{Topic: e.topic, Value: []byte(v)})
		if err != nil || r.Duplicate != dup {
			e.t.Fatalf("produce %q: %+v, %v; want duplicate=%v", v, r, err, dup)
		}
	}
}

// produceBatch produces the values as one batch and returns their results.
func (e *seqTestEnv) produceBatch(p *client.Producer, vals ...string) []client.Result {
	e.t.Helper()
	res := make([]client.Result, len(vals))
	errs := make([]error, len(vals))
	for i, v := range vals {
		p.ProduceAsync(&client.Record{Topic: e.topic, Value: []byte(v)}, func(r client.Result, err error) { res[i], errs[i] = r, err })
	}
	if err := p.Flush(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if err := errors.Join(errs...); err != nil {
		e.t.Fatalf("produce %q: %v", vals, err)
	}
	return res
}

// values returns every value of the partition, checking that the log ends
// after them.
func (e *seqTestEnv) values() []string {
	e.t.Helper()
	end, err := client.NewAdmin(e.c).ListOffsets(e.ctx, client.TopicPartition{Topic: e.topic}, client.AtEnd())
	if err != nil {
		e.t.Fatal(err)
	}
	co, err := client.NewConsumer(e.c, client.DefaultConsumerConfig())
	if err != nil {
		e.t.Fatal(err)
	}
	defer co.Close()
	if err := co.Assign(client.AtStart(), client.TopicPartition{Topic: e.topic}); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for int64(len(out)) < end {
		fs, err := co.Poll(e.ctx)
		if err != nil {
			e.t.Fatalf("poll after %d of %d records: %v", len(out), end, err)
		}
		for _, r := range fs.All() {
			out = append(out, string(r.Value))
		}
	}
	return out
}

// rawProduce sends one batch as a client library would not: to resend
// the bytes of a batch the broker may already hold.
func (e *seqTestEnv) rawProduce(pid int64, epoch int16, seq int32, vals ...string) (*stratav1.ProduceResponse, error) {
	e.t.Helper()
	conn, err := grpc.NewClient(brokers[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	recs := make([]record.Record, len(vals))
	for i, v := range vals {
		recs[i] = record.Record{Value: []byte(v), Timestamp: time.Now()}
	}
	batch, err := record.AppendBatch(nil, recs, record.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
	if err != nil {
		e.t.Fatal(err)
	}
	return stratav1.NewStrataClient(conn).Produce(e.ctx, &stratav1.ProduceRequest{Topic: e.topic, Batch: batch})
}

func seqValues(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// TestProducerSequenceWrap: a producer whose sequences pass math.MaxInt32
// wraps them to 0 and stays idempotent: a batch spanning the wrap and
// batches after it are recognised when sent again, and a resumed producer
// replaying the same records across the wrap gets them acknowledged as
// duplicates, and its next records written once.
func TestProducerSequenceWrap(t *testing.T) {
	e := newSeqTestEnv(t, "seq-wrap")
	cfg := client.DefaultProducerConfig()
	cfg.Linger = 0
	p := e.producer(cfg, math.MaxInt32-6)
	e.produceSync(p, false, seqValues("v", 0, 4)...) // max-6 .. max-3
	span := seqValues("v", 4, 10)                    // max-2 .. 2: one batch across the wrap
	for i, r := range e.produceBatch(p, span...) {
		if r.Offset != int64(4+i) || r.Duplicate {
			t.Fatalf("record %d of the batch across the wrap: %+v", i, r)
		}
	}
	e.produceSync(p, false, seqValues("v", 10, 13)...) // 3 .. 5
	pid, err := p.ProducerID(e.ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Retries of batches the broker holds, across the wrap and after it.
	if r, err := e.rawProduce(pid, 0, math.MaxInt32-2, span...); err != nil || !r.GetDuplicate() || r.GetBaseOffset() != 4 {
		t.Fatalf("retry of the batch across the wrap: %v, %v; want a duplicate at offset 4", r, err)
	}
	if r, err := e.rawProduce(pid, 0, 4, "v11"); err != nil || !r.GetDuplicate() || r.GetBaseOffset() != 11 {
		t.Fatalf("retry of a batch after the wrap: %v, %v; want a duplicate at offset 11", r, err)
	}
	want := seqValues("v", 0, 13)
	if got := e.values(); !slices.Equal(got, want) {
		t.Fatalf("log %q, want %q", got, want)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// The resume rule across the wrap: one batch from max-6 with the 13
	// records written and 2 more is refused as out of order, expecting 6;
	// the producer completes the 13 as duplicates and writes the 2.
	cfg.ProducerID = pid
	q := e.producer(cfg, math.MaxInt32-6)
	res := e.produceBatch(q, seqValues("v", 0, 15)...)
	for i, r := range res {
		if r.Duplicate != (i < 13) || (i >= 13 && r.Offset != int64(i)) {
			t.Fatalf("resumed producer, record %d: %+v", i, r)
		}
	}
	e.produceSync(q, false, "v15")
	want = seqValues("v", 0, 16)
	if got := e.values(); !slices.Equal(got, want) {
		t.Fatalf("log after resuming %q, want %q", got, want)
	}
}

// TestProducerFencedByNewerInstance: two live producers share an id (the
// second resumed the first's). From the second's start on, the first is
// fenced: its next record fails with ErrProducerFenced and a message that
// says why, and so does every later one, and nothing it sends is stored;
// the second's replay of the first's records is recognised and its own
// records are stored once.
func TestProducerFencedByNewerInstance(t *testing.T) {
	e := newSeqTestEnv(t, "fenced")
	cfg := client.DefaultProducerConfig()
	cfg.Linger = 0
	old := e.producer(cfg, 0)
	e.produceSync(old, false, seqValues("r", 0, 5)...)
	pid, err := old.ProducerID(e.ctx)
	if err != nil {
		t.Fatal(err)
	}

	cfg.ProducerID = pid
	newer := e.producer(cfg, 0)
	if id, err := newer.ProducerID(e.ctx); err != nil || id != pid {
		t.Fatalf("resumed producer: id %d, %v; want %d", id, err, pid)
	}
	for i, v := range []string{"zombie0", "zombie1"} {
		_, err := old.Produce(e.ctx, &client.Record{Topic: e.topic, Value: []byte(v)})
		if !errors.Is(err, client.ErrProducerFenced) {
			t.Fatalf("older producer's record %d after the newer started: %v, want ErrProducerFenced", i, err)
		}
		if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("producer fenced: another producer with id %d started (epoch 1)", pid)) {
			t.Errorf("fenced error says %q", msg)
		}
		var fe *client.ProducerFencedError
		if !errors.As(err, &fe) || fe.ProducerID != pid || fe.Epoch != 0 || fe.NewerEpoch != 1 {
			t.Errorf("fenced error %#v, want producer %d epoch 0 fenced by epoch 1", fe, pid)
		}
		if i == 0 {
			t.Logf("the fenced producer's error: %v", err)
		}
	}
	e.produceSync(newer, true, seqValues("r", 0, 5)...) // the replay
	e.produceSync(newer, false, seqValues("s", 5, 10)...)
	want := append(seqValues("r", 0, 5), seqValues("s", 5, 10)...)
	if got := e.values(); !slices.Equal(got, want) {
		t.Fatalf("log %q, want %q", got, want)
	}
}
