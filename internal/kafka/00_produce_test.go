package kafka_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/kafka"
)

// consumeAll reads n records of a topic from the start with kgo.
func consumeAll(t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	ctx := ctxT(t)
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(got), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		got = append(got, fs.Records()...)
	}
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	return got
}

// TestProduceEveryCodecIdempotent: an idempotent kgo producer writes keyed
// records with headers in every codec; kgo reads them back byte-equal
// (keys, values, headers, timestamps), in order within each partition,
// and the stored batches still carry the producer's codec (the broker
// passes them through).
func TestProduceEveryCodecIdempotent(t *testing.T) {
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		id    int
	}{
		{"none", kgo.NoCompression(), 0},
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			topic := createTopic(t, 3, nil)
			cl := newClient(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(c.codec))
			const n = 60
			base := time.UnixMilli(1_700_000_000_000)
			var sent []*kgo.Record
			for i := range n {
				sent = append(sent, &kgo.Record{
					Key:       fmt.Appendf(nil, "key-%d", i%7),
					Value:     []byte(strings.Repeat(fmt.Sprintf("value %d ", i), 20)),
					Headers:   []kgo.RecordHeader{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}, {Key: "empty"}},
					Timestamp: base.Add(time.Duration(i) * time.Millisecond),
				})
			}
			if err := cl.ProduceSync(ctxT(t), sent...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			byIndex := map[string]*kgo.Record{}
			for _, r := range sent {
				byIndex[string(r.Headers[0].Value)] = r
			}
			got := consumeAll(t, topic, n)
			last := map[int32]int64{}
			for _, r := range got {
				want := byIndex[string(r.Headers[0].Value)]
				if want == nil || !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) ||
					!r.Timestamp.Equal(want.Timestamp) || len(r.Headers) != 2 || r.Headers[1].Key != "empty" || len(r.Headers[1].Value) != 0 {
					t.Fatalf("read %+v, sent %+v", r, want)
				}
				if r.Partition != want.Partition {
					t.Fatalf("record %s in partition %d, produced to %d", r.Headers[0].Value, r.Partition, want.Partition)
				}
				if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
					t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
				}
				last[r.Partition] = r.Offset
			}
			// Order within a partition is the order sent.
			for p := range int32(3) {
				var sentIdx, gotIdx []string
				for _, r := range sent {
					if r.Partition == p {
						sentIdx = append(sentIdx, string(r.Headers[0].Value))
					}
				}
				for _, r := range got {
					if r.Partition == p {
						gotIdx = append(gotIdx, string(r.Headers[0].Value))
					}
				}
				if strings.Join(sentIdx, ",") != strings.Join(gotIdx, ",") {
					t.Fatalf("partition %d: read %v, sent %v", p, gotIdx, sentIdx)
				}
			}
			if codec := storedCodec(t, topic, sent[0].Partition); codec != c.id {
				t.Errorf("stored batch has codec %d, want %d", codec, c.id)
			}
		})
	}
}

// storedCodec returns the codec bits of a partition's first stored batch.
func storedCodec(t *testing.T, topic string, partition int32) int {
	t.Helper()
	resp := fetchRaw(t, newClient(t), 11, 0, 1<<20, map[string][]fetchAt{topic: {{partition, 0, 1 << 20}}})
	sp := resp.Topics[0].Partitions[0]
	if sp.ErrorCode != 0 || len(sp.RecordBatches) < 23 {
		t.Fatalf("fetch: %v, %d bytes", kerr.ErrorForCode(sp.ErrorCode), len(sp.RecordBatches))
	}
	return int(sp.RecordBatches[22] & 7)
}

// TestProduceAcks: acks=0 (no answer at all) and acks=1 produce; the
// records are there afterwards.
func TestProduceAcks(t *testing.T) {
	for _, c := range []struct {
		name string
		acks kgo.Acks
	}{{"acks0", kgo.NoAck()}, {"acks1", kgo.LeaderAck()}} {
		t.Run(c.name, func(t *testing.T) {
			topic := createTopic(t, 1, nil)
			cl := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(c.acks), kgo.DisableIdempotentWrite())
			var recs []*kgo.Record
			for i := range 20 {
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)})
			}
			res := cl.ProduceSync(ctxT(t), recs...)
			if err := res.FirstErr(); err != nil {
				t.Fatal(err)
			}
			got := consumeAll(t, topic, 20)
			for i, r := range got {
				if string(r.Value) != fmt.Sprintf("v%d", i) || r.Offset != int64(i) {
					t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
				}
			}
		})
	}
}

// TestProduceAcksZeroNoResponse: a raw acks=0 produce gets no response:
// the next request's response is the next thing on the connection, and
// the batch is stored.
func TestProduceAcksZeroNoResponse(t *testing.T) {
	topic := createTopic(t, 1, nil)
	rc := dialRaw(t)
	req := produceReq(topic, 0, batch(t, record.BatchOptions{}, 1, 10))
	req.SetVersion(7)
	req.Acks = 0
	rc.send(req)
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(7)
	corr := rc.send(md)
	if got := rc.read(md.ResponseKind()); got != corr {
		t.Fatalf("response to request %d, want %d (the acks=0 produce was answered)", got, corr)
	}
	if lo := listOffsetsRaw(t, newClient(t), topic, 0, -1); lo.Offset != 1 {
		t.Fatalf("latest offset %d after an acks=0 produce, want 1", lo.Offset)
	}
}

// rawConn is a bare connection to the listener: requests go out exactly
// as built (kgo rewrites a produce's acks to its own setting).
type rawConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

func dialRaw(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", node.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, c: c}
}

// send writes a request (header v1: not for flexible versions) and
// returns its correlation id.
func (rc *rawConn) send(req kmsg.Request) int32 {
	rc.t.Helper()
	rc.corr++
	buf := []byte{0, 0, 0, 0}
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(rc.corr))
	buf = binary.BigEndian.AppendUint16(buf, 4)
	buf = append(buf, "test"...)
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	if _, err := rc.c.Write(buf); err != nil {
		rc.t.Fatal(err)
	}
	return rc.corr
}

// read reads one response (header v0) into resp and returns its
// correlation id.
func (rc *rawConn) read(resp kmsg.Response) int32 {
	rc.t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(rc.c, size[:]); err != nil {
		rc.t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(rc.c, body); err != nil {
		rc.t.Fatal(err)
	}
	if err := resp.ReadFrom(body[4:]); err != nil {
		rc.t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(body))
}

// batch returns a v2 batch of n records of size bytes each.
func batch(t testing.TB, opt record.BatchOptions, n, size int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{Value: bytes.Repeat([]byte{'x'}, size), Timestamp: time.UnixMilli(1000 + int64(i))}
	}
	b, err := record.AppendBatch(nil, recs, opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withAttrs sets a batch's attributes and fixes its CRC.
func withAttrs(b []byte, attrs int16) []byte {
	b = bytes.Clone(b)
	b[21], b[22] = byte(attrs>>8), byte(attrs)
	crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))
	b[17], b[18], b[19], b[20] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	return b
}

func produceReq(topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// produceRaw sends one batch and returns its partition's answer.
func produceRaw(t *testing.T, cl *kgo.Client, req *kmsg.ProduceRequest) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req.SetVersion(7)
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("response %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

// TestProduceErrors: each refusal's error code, from raw requests.
func TestProduceErrors(t *testing.T) {
	small := createTopic(t, 2, map[string]*string{"max.message.bytes": ptr("1024")})
	cl := newClient(t)
	ok := batch(t, record.BatchOptions{}, 1, 10)
	corrupt := bytes.Clone(ok)
	corrupt[len(corrupt)-1] ^= 0xff
	txnID := produceReq(small, 0, ok)
	txnID.TransactionID = ptr("txn")
	cases := []struct {
		name string
		req  *kmsg.ProduceRequest
		want error
	}{
		{"ok", produceReq(small, 0, ok), nil},
		{"unknown topic", produceReq("no-such-topic", 0, ok), kerr.UnknownTopicOrPartition},
		{"bad partition", produceReq(small, 2, ok), kerr.UnknownTopicOrPartition},
		{"negative partition", produceReq(small, -1, ok), kerr.UnknownTopicOrPartition},
		{"too large", produceReq(small, 0, batch(t, record.BatchOptions{}, 2, 600)), kerr.MessageTooLarge},
		{"corrupt", produceReq(small, 0, corrupt), kerr.CorruptMessage},
		{"two batches", produceReq(small, 0, append(bytes.Clone(ok), ok...)), kerr.CorruptMessage},
		{"transactional id", txnID, kerr.TransactionalIDAuthorizationFailed},
		{"transactional batch", produceReq(small, 0, withAttrs(ok, 0x10)), kerr.TransactionalIDAuthorizationFailed},
		{"control batch", produceReq(small, 0, withAttrs(ok, 0x20)), kerr.InvalidRecord},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp := produceRaw(t, cl, c.req)
			if err := kerr.ErrorForCode(sp.ErrorCode); !errors.Is(err, c.want) && (c.want != nil || err != nil) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if c.want == nil && sp.LogStartOffset != 0 {
				t.Errorf("log start offset %d, want 0", sp.LogStartOffset)
			}
		})
	}
	t.Run("bad acks", func(t *testing.T) {
		rc := dialRaw(t)
		req := produceReq(small, 0, ok)
		req.SetVersion(7)
		req.Acks = 2
		rc.send(req)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		rc.read(resp)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidRequiredAcks.Code {
			t.Fatalf("acks=2: %v, want INVALID_REQUIRED_ACKS", kerr.ErrorForCode(code))
		}
	})
}

// direct returns the node's broker in cl, to send a request there
// without kgo's routing (which answers unknown topics itself).
func direct(cl *kgo.Client) *kgo.Broker { return cl.Broker(int(kafka.NodeID32("k1"))) }

// TestProduceDuplicate: an idempotent producer's retry of a committed
// batch answers the original offset without an error, and is stored once.
func TestProduceDuplicate(t *testing.T) {
	topic := createTopic(t, 1, nil)
	cl := newClient(t)
	init := kmsg.NewPtrInitProducerIDRequest()
	ir, err := init.RequestWith(ctxT(t), cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatalf("init producer: %v %v", err, kerr.ErrorForCode(ir.ErrorCode))
	}
	opt := record.BatchOptions{ProducerID: ir.ProducerID, ProducerEpoch: ir.ProducerEpoch}
	b0 := batch(t, opt, 3, 10)
	opt.BaseSequence = 3
	b1 := batch(t, opt, 2, 10)
	for i, want := range []int64{0, 3, 3} {
		b := b0
		if i > 0 {
			b = b1
		}
		sp := produceRaw(t, cl, produceReq(topic, 0, b))
		if sp.ErrorCode != 0 || sp.BaseOffset != want {
			t.Fatalf("produce %d: %v at %d, want %d", i, kerr.ErrorForCode(sp.ErrorCode), sp.BaseOffset, want)
		}
	}
	opt.BaseSequence = 9
	if sp := produceRaw(t, cl, produceReq(topic, 0, batch(t, opt, 1, 10))); sp.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("sequence gap: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", kerr.ErrorForCode(sp.ErrorCode))
	}
	if lo := listOffsetsRaw(t, cl, topic, 0, -1); lo.Offset != 5 {
		t.Fatalf("latest offset %d, want 5", lo.Offset)
	}
}

func ptr[T any](v T) *T { return &v }
