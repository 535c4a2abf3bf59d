package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// fakeLog is a broker serving one partition ("t", 0) from stored batches
// in memory, with a hook to fail, block or change the log at a fetch. It
// answers Metadata, ListOffsets and Fetch, as the consumer needs.
type fakeLog struct {
	stratav1.UnimplementedStrataServer
	addr string

	mu       sync.Mutex
	batches  [][]byte // stored batches, offsets growing
	bases    []int64
	start    int64 // log start offset
	hwm      int64
	cut      bool // answer exactly MaxBytes, cutting a batch, as a broker may
	inFlight int
	asked    []int64 // the offset of every Fetch, in arrival order
	// onFetch runs at the start of every Fetch, without mu; an error is
	// the answer.
	onFetch func(ctx context.Context, off int64) error
}

// newFakeLog serves batches of 10 records each, the batch at index
// corrupt (if any) with a broken CRC.
func newFakeLog(t *testing.T, batches, corrupt int) *fakeLog {
	t.Helper()
	sizes := make([]int, batches)
	for i := range sizes {
		sizes[i] = 10
	}
	return newFakeLogSizes(t, sizes, corrupt)
}

// newFakeLogSizes serves batches of the given numbers of records.
func newFakeLogSizes(t *testing.T, sizes []int, corrupt int) *fakeLog {
	t.Helper()
	l := &fakeLog{}
	for i, n := range sizes {
		b := storedBatches(t, l.hwm, n)
		if i == corrupt {
			b[len(b)-1] ^= 0xff
		}
		l.batches, l.bases = append(l.batches, b), append(l.bases, l.hwm)
		l.hwm += int64(n)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = lis.Addr().String()
	srv := grpc.NewServer()
	stratav1.RegisterStrataServer(srv, l)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return l
}

func (l *fakeLog) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	return &stratav1.MetadataResponse{Topics: []*stratav1.TopicInfo{{
		Name: "t", Partitions: []*stratav1.PartitionInfo{{Partition: 0, LeaderAddr: l.addr}},
	}}}, nil
}

func (l *fakeLog) ListOffsets(_ context.Context, req *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if req.GetSpec() == stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST {
		return &stratav1.ListOffsetsResponse{Offset: l.start}, nil
	}
	return &stratav1.ListOffsetsResponse{Offset: l.hwm}, nil
}

func (l *fakeLog) Fetch(ctx context.Context, req *stratav1.FetchRequest) (*stratav1.FetchResponse, error) {
	off := req.GetOffset()
	l.mu.Lock()
	l.inFlight++
	l.asked = append(l.asked, off)
	hook := l.onFetch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.inFlight--
		l.mu.Unlock()
	}()
	if hook != nil {
		if err := hook(ctx, off); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if off < l.start || off > l.hwm {
		return nil, status.Errorf(codes.OutOfRange, "offset %d not in [%d, %d]", off, l.start, l.hwm)
	}
	var out []byte
	for i, b := range l.batches {
		if i+1 < len(l.bases) && l.bases[i+1] <= off {
			continue // ends before off
		}
		if len(out) > 0 && len(out)+len(b) > int(req.GetMaxBytes()) && !l.cut {
			break
		}
		out = append(out, b...)
		if l.cut && len(out) >= int(req.GetMaxBytes()) {
			out = out[:req.GetMaxBytes()]
			break
		}
	}
	return &stratav1.FetchResponse{Records: out, HighWatermark: l.hwm, LogStartOffset: l.start}, nil
}

// retain drops the batches below off, as retention does.
func (l *fakeLog) retain(off int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.bases) > 0 && l.bases[0] < off {
		l.batches, l.bases = l.batches[1:], l.bases[1:]
	}
	l.start = off
}

func (l *fakeLog) fetchesInFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

func (l *fakeLog) wasAsked(off int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.asked, off)
}

// blockFrom makes every Fetch at or after off wait until it is cancelled.
func blockFrom(off int64) func(ctx context.Context, at int64) error {
	return func(ctx context.Context, at int64) error {
		if at >= off {
			<-ctx.Done()
			return status.FromContextError(ctx.Err()).Err()
		}
		return nil
	}
}

// pipelineConsumer reads ("t", 0) of l from offset 0 with fetches of two
// batches each, maxPoll records a Poll at most (0: no bound).
func pipelineConsumer(t *testing.T, l *fakeLog, maxPoll int, opts ...grpc.DialOption) *Consumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, []string{l.addr}, WithRetries(2, 10*time.Millisecond), WithDialOptions(opts...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cfg := DefaultConsumerConfig()
	cfg.FetchMaxBytes = 2 * len(l.batches[0])
	cfg.FetchMaxWait = time.Minute // a fetch left behind would show
	cfg.MaxPollRecords = maxPoll
	co, err := NewConsumer(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	if err := co.Assign(AtOffset(0), TopicPartition{"t", 0}); err != nil {
		t.Fatal(err)
	}
	return co
}

// pollUntil polls until it has want records or an error, and returns
// their offsets.
func pollUntil(t *testing.T, co *Consumer, want int) ([]int64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []int64
	for len(got) < want {
		fs, err := co.Poll(ctx)
		for _, r := range fs.All() {
			got = append(got, r.Offset)
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func offsetRange(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

// fetcherGoroutines returns the stacks of goroutines running a
// partition's fetcher or a fetch of its.
func fetcherGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "client.(*Consumer).fetch") {
			out = append(out, g)
		}
	}
	return out
}

// TestConsumerPipelineCorruption: a corrupt batch in the middle gives the
// records before it, then the error, and nothing after it; the fetch sent
// ahead beyond the corrupt batch (which the broker would hold forever) is
// cancelled, and the fetcher ends.
func TestConsumerPipelineCorruption(t *testing.T) {
	l := newFakeLog(t, 10, 5) // offsets 50..59 are corrupt
	l.onFetch = blockFrom(60)
	co := pipelineConsumer(t, l, 0)
	got, err := pollUntil(t, co, 100)
	if !errors.Is(err, record.ErrChecksum) {
		t.Fatalf("Poll: %v, want a checksum error", err)
	}
	if want := offsetRange(0, 50); !slices.Equal(got, want) {
		t.Fatalf("got offsets %v, want %v", got, want)
	}
	wait.For(t, 3*time.Second, "a fetch is still in flight after the corruption was reported", func() bool { return l.fetchesInFlight() == 0 })
	wait.For(t, 3*time.Second, "the fetcher is still running after the corruption was reported", func() bool { return len(fetcherGoroutines()) == 0 })
}

// TestConsumerPipelineOutOfRange: retention moves the log start past the
// offset of a fetch sent ahead; the consumer hands over what it had and
// starts again at the new log start, each record once, in order.
func TestConsumerPipelineOutOfRange(t *testing.T) {
	l := newFakeLog(t, 10, -1)
	var once sync.Once
	l.onFetch = func(_ context.Context, off int64) error {
		if off >= 40 {
			once.Do(func() { l.retain(60) })
		}
		return nil
	}
	co := pipelineConsumer(t, l, 0)
	got, err := pollUntil(t, co, 80)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(offsetRange(0, 40), offsetRange(60, 100)...); !slices.Equal(got, want) {
		t.Fatalf("got offsets %v, want %v", got, want)
	}
}

// TestConsumerPipelineSeek: a Seek while fetches are ahead drops them;
// the records after it start where it says.
func TestConsumerPipelineSeek(t *testing.T) {
	l := newFakeLog(t, 10, -1)
	co := pipelineConsumer(t, l, 0)
	got, err := pollUntil(t, co, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Seek(TopicPartition{"t", 0}, AtOffset(5)); err != nil {
		t.Fatal(err)
	}
	again, err := pollUntil(t, co, 95)
	if err != nil {
		t.Fatal(err)
	}
	if want := offsetRange(5, 100); !slices.Equal(again, want) || !slices.Equal(got, offsetRange(0, int64(len(got)))) {
		t.Fatalf("got offsets %v, then after the Seek %v", got, again)
	}
}

// slowCancel makes a cancelled Fetch return to its caller only after
// 500 ms, as over a slow network: a fetch that Close did not wait for
// is then still running when Close returns.
var slowCancel = grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if strings.HasSuffix(method, "/Fetch") && ctx.Err() != nil {
		time.Sleep(500 * time.Millisecond)
	}
	return err
})

// TestConsumerPipelineClose closes a consumer whose fetch ahead is
// blocked on the broker, once while the fetcher waits for Poll to take
// its records and once while it waits for that fetch: Close returns
// promptly (after the cancelled fetch returned) and leaves no fetch and
// no goroutine behind.
func TestConsumerPipelineClose(t *testing.T) {
	for _, tt := range []struct {
		name string
		poll int // records to poll before Close
	}{
		{"waiting for Poll", 0},
		{"waiting for the fetch ahead", 40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newFakeLog(t, 10, -1)
			l.onFetch = blockFrom(40)
			co := pipelineConsumer(t, l, 0, slowCancel)
			if _, err := pollUntil(t, co, tt.poll); err != nil {
				t.Fatal(err)
			}
			// Without pipelining, the fetch at 40 would wait until Poll
			// took 0..19 and the fetcher had handed over 20..39.
			wait.For(t, 3*time.Second, "no fetch ahead at offset 40", func() bool { return l.wasAsked(40) })
			start := time.Now()
			if err := co.Close(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Close took %v", d)
			}
			// The fetch's goroutine may be finishing its return, hence a
			// deadline, well below slowCancel's delay.
			wait.For(t, 100*time.Millisecond, "a fetch goroutine is left after Close", func() bool { return len(fetcherGoroutines()) == 0 })
			wait.For(t, 3*time.Second, "a fetch is still in flight on the broker after Close", func() bool { return l.fetchesInFlight() == 0 })
			if _, err := co.Poll(context.Background()); !errors.Is(err, ErrClosed) {
				t.Fatalf("Poll after Close: %v", err)
			}
		})
	}
}

// TestConsumerPipelineManyFetches reads 2,000 records two batches a
// fetch: every record once, in order, while Poll takes them slowly (so
// fetches complete ahead of handOver) and fast.
func TestConsumerPipelineManyFetches(t *testing.T) {
	for _, maxPoll := range []int{0, 7} {
		t.Run(fmt.Sprintf("MaxPollRecords=%d", maxPoll), func(t *testing.T) {
			l := newFakeLog(t, 200, -1)
			co := pipelineConsumer(t, l, maxPoll)
			got, err := pollUntil(t, co, 2000)
			if err != nil {
				t.Fatal(err)
			}
			if want := offsetRange(0, 2000); !slices.Equal(got, want) {
				t.Fatalf("got %d offsets, not 0..1999 in order: %v", len(got), got)
			}
		})
	}
}

// TestConsumerPipelinePartialBatches: a broker that cuts its answers at
// MaxBytes, with a batch many times that size: the fetcher grows the
// size until the batch fits (no fetch ahead then), goes back to the
// configured size, and every record comes once, in order.
func TestConsumerPipelinePartialBatches(t *testing.T) {
	l := newFakeLogSizes(t, []int{10, 10, 10, 3000, 10, 10, 10}, -1)
	l.cut = true
	co := pipelineConsumer(t, l, 0)
	got, err := pollUntil(t, co, 3060)
	if err != nil {
		t.Fatal(err)
	}
	if want := offsetRange(0, 3060); !slices.Equal(got, want) {
		t.Fatalf("got %d offsets, not 0..3059 in order: %v", len(got), got)
	}
}
