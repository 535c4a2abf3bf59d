package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// openTestBroker starts a single-node cluster in a temporary directory
// with a broker over it.
func openTestBroker(t *testing.T) *broker.Broker {
	t.Helper()
	var b *broker.Broker
	node, err := cluster.OpenNode(context.Background(), cluster.NodeConfig{
		ID: "n1", Dir: t.TempDir(), ClusterAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", DataGroups: 1,
		Segment: func(topic.Config) segment.Config {
			c := segment.DefaultConfig()
			c.Fsync = segment.FsyncNever
			return c
		},
		Raft: cluster.DefaultGroupConfig(),
	}, func() {
		if b != nil {
			b.NotifyMetadataChanged()
		}
	})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	b, err = broker.New(broker.DefaultConfig(), node)
	if err == nil {
		err = b.Start(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
		if err := node.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return b
}

// produceBatches creates topic t and appends one batch per value, each
// value repeated to n bytes; it returns the base offsets.
func produceBatches(t *testing.T, b *broker.Broker, n int, values ...string) []int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, "t", topic.Config{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for _, v := range values {
		batch, err := record.AppendBatch(nil, []record.Record{{Value: []byte(strings.Repeat(v, n)), Timestamp: time.Now()}},
			record.BatchOptions{ProducerID: -1, BaseSequence: -1})
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Produce(ctx, "t", 0, batch)
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, res.BaseOffset)
	}
	return offs
}

// checkEncoding fails unless out holds exactly proto.Marshal(m) and
// decodes back to m.
func checkEncoding(t *testing.T, m *stratav1.FetchResponse, out mem.BufferSlice) {
	t.Helper()
	got := out.Materialize()
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("codec wrote %x, proto.Marshal %x", got, want)
	}
	var back stratav1.FetchResponse
	if err := proto.Unmarshal(got, &back); err != nil {
		t.Fatalf("unmarshal codec output: %v", err)
	}
	if !proto.Equal(&back, m) {
		t.Fatalf("decoded %v, want %v", &back, m)
	}
}

func TestFetchCodecMatchesProto(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<12)
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 7)
	for _, tc := range []struct {
		name string
		m    *stratav1.FetchResponse
	}{
		{"zero", &stratav1.FetchResponse{}},
		{"empty records", &stratav1.FetchResponse{Records: []byte{}, HighWatermark: 5, LogStartOffset: 1}},
		{"small records", &stratav1.FetchResponse{Records: []byte("abc"), HighWatermark: 1}},
		{"large records", &stratav1.FetchResponse{Records: big, HighWatermark: 1 << 40, LogStartOffset: 3}},
		{"large records, no offsets", &stratav1.FetchResponse{Records: big}},
		{"negative offsets", &stratav1.FetchResponse{Records: big, HighWatermark: -1, LogStartOffset: -1 << 62}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := fetchCodec{}.Marshal(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			checkEncoding(t, tc.m, out)
			out.Free()
		})
	}
	t.Run("unknown fields", func(t *testing.T) {
		m := &stratav1.FetchResponse{Records: big, HighWatermark: 2}
		m.ProtoReflect().SetUnknown(unknown)
		out, err := fetchCodec{}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		checkEncoding(t, m, out)
		out.Free()
	})
	t.Run("other messages", func(t *testing.T) {
		m := &stratav1.FetchRequest{Topic: "t", Offset: 9, MaxBytes: 100}
		out, err := fetchCodec{}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back stratav1.FetchRequest
		if err := (fetchCodec{}).Unmarshal(out, &back); err != nil || !proto.Equal(&back, m) {
			t.Fatalf("round trip: %v, %v; want %v", &back, err, m)
		}
		out.Free()
	})
}

func FuzzFetchCodec(f *testing.F) {
	f.Add([]byte(nil), int64(0), int64(0), false)
	f.Add([]byte{}, int64(1), int64(0), false)
	f.Add(bytes.Repeat([]byte{0xff}, 5000), int64(-1), int64(1<<62), false)
	f.Add(bytes.Repeat([]byte{1}, 4096), int64(300), int64(0), true)
	f.Fuzz(func(t *testing.T, records []byte, hwm, lso int64, withUnknown bool) {
		m := &stratav1.FetchResponse{Records: records, HighWatermark: hwm, LogStartOffset: lso}
		if withUnknown {
			m.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), records[:min(len(records), 3)]))
		}
		out, err := fetchCodec{}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		checkEncoding(t, m, out)
		out.Free()
	})
}

// TestLeasedBufferNotReusedWhileReferenced sends a leased response through
// the codec and keeps the encoded buffers, as gRPC does until the bytes
// are written. A fetch meanwhile must not get the same buffer (it would
// overwrite the records being sent); once gRPC frees the buffers the next
// fetch reuses it.
func TestLeasedBufferNotReusedWhileReferenced(t *testing.T) {
	b := openTestBroker(t)
	ctx := context.Background()
	offs := produceBatches(t, b, 8<<10, "a", "b", "c")

	fetch := func(off int64) *leasedFetch {
		t.Helper()
		r, lease, err := b.FetchLeased(ctx, "t", 0, off, 1, 0) // one batch
		if err != nil || lease == nil {
			t.Fatalf("fetch at %d: lease %v, err %v", off, lease, err)
		}
		return &leasedFetch{lease: lease, resp: &stratav1.FetchResponse{Records: r.Records, HighWatermark: r.HighWatermark}}
	}
	first := fetch(offs[0])
	out, err := fetchCodec{}.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	want := out.Materialize()
	firstBuf := &first.resp.Records[0]

	second := fetch(offs[1])
	if &second.resp.Records[0] == firstBuf {
		t.Errorf("a fetch got the buffer of a response that gRPC still holds")
	}
	if got := out.Materialize(); !bytes.Equal(got, want) {
		t.Fatalf("the encoded response changed while gRPC still held it: %d bytes differ from what was encoded",
			countDiff(got, want))
	}
	second.lease.Release()
	out.Free() // gRPC wrote the bytes: now the buffer may go back
	third := fetch(offs[2])
	defer third.lease.Release()
	if &third.resp.Records[0] != firstBuf && &third.resp.Records[0] != &second.resp.Records[0] {
		t.Errorf("a fetch after the buffers were freed did not reuse one of them")
	}
}

func countDiff(a, b []byte) int {
	n := 0
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			n++
		}
	}
	return n + max(len(a), len(b)) - min(len(a), len(b))
}

// TestFetchOverGRPC fetches through a real gRPC server with the options
// of GRPCOptions, many times and concurrently, and checks each answer
// against the broker's own Fetch.
func TestFetchOverGRPC(t *testing.T) {
	b := openTestBroker(t)
	offs := produceBatches(t, b, 6<<10, "a", "b", "c", "d", "e", "f")
	srv := New(b)
	g := grpc.NewServer(GRPCOptions()...)
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	cl := stratav1.NewStrataClient(conn)
	ctx := context.Background()

	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := range 50 {
				off := offs[(w+i)%len(offs)]
				maxBytes := int32(1 + (i%3)*(8<<10))
				resp, err := cl.Fetch(ctx, &stratav1.FetchRequest{Topic: "t", Offset: off, MaxBytes: maxBytes})
				if err != nil {
					errs <- err
					return
				}
				want, err := b.Fetch(ctx, "t", 0, off, int(maxBytes), 0)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(resp.Records, want.Records) || resp.HighWatermark != want.HighWatermark ||
					resp.LogStartOffset != want.LogStartOffset {
					errs <- errMismatch{off, len(resp.Records), len(want.Records)}
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// At the high watermark the answer has no records, as before.
	resp, err := cl.Fetch(ctx, &stratav1.FetchRequest{Topic: "t", Offset: offs[len(offs)-1] + 1})
	if err != nil || len(resp.Records) != 0 || resp.HighWatermark != offs[len(offs)-1]+1 {
		t.Fatalf("fetch at the high watermark: %v, %v", resp, err)
	}
}

type errMismatch struct {
	off       int64
	got, want int
}

func (e errMismatch) Error() string {
	return fmt.Sprintf("fetch at %d: %d bytes over gRPC, the broker's Fetch has %d", e.off, e.got, e.want)
}

// TestFetchDirectCallKeepsRecords calls Server.Fetch without gRPC: there is
// no interceptor to take the lease, so the records must stay valid however
// many fetches follow.
func TestFetchDirectCallKeepsRecords(t *testing.T) {
	b := openTestBroker(t)
	offs := produceBatches(t, b, 8<<10, "a", "b")
	srv := New(b)
	ctx := context.Background()
	first, err := srv.Fetch(ctx, &stratav1.FetchRequest{Topic: "t", Offset: offs[0], MaxBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(first.Records)
	for range 5 {
		if _, err := srv.Fetch(ctx, &stratav1.FetchRequest{Topic: "t", Offset: offs[1], MaxBytes: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(first.Records, want) {
		t.Fatal("records of a direct Fetch call changed after later fetches")
	}
}
