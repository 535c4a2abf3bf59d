package kafka_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/api/record"
)

// fetchAt is one partition of a raw fetch.
type fetchAt struct {
	partition int32
	offset    int64
	maxBytes  int32
}

// fetchRaw sends a raw fetch (sessionless) of the given version.
func fetchRaw(t *testing.T, cl *kgo.Client, version int16, maxWaitMs, maxBytes int32, parts map[string][]fetchAt) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(version)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, maxWaitMs, 1, maxBytes
	req.SessionEpoch = -1
	topics := make([]string, 0, len(parts))
	for topic := range parts {
		topics = append(topics, topic)
	}
	slices.Sort(topics)
	for _, topic := range topics {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		for _, fa := range parts[topic] {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = fa.partition, fa.offset, fa.maxBytes
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return resp
}

// produceN writes n batches of one record of size bytes to a partition.
func produceN(t *testing.T, cl *kgo.Client, topic string, partition int32, n, size int) {
	t.Helper()
	for range n {
		if sp := produceRaw(t, cl, produceReq(topic, partition, batch(t, record.BatchOptions{}, 1, size))); sp.ErrorCode != 0 {
			t.Fatalf("produce: %v", kerr.ErrorForCode(sp.ErrorCode))
		}
	}
}

// TestFetchLongPollAnyPartition: a fetch waiting on two empty partitions
// answers as soon as the second one gets data, not after MaxWait (as a
// fetch waiting on the partitions one after the other would).
func TestFetchLongPollAnyPartition(t *testing.T) {
	topic := createTopic(t, 2, nil)
	cl := newClient(t)
	const maxWait = 10 * time.Second
	produced := make(chan time.Time, 1)
	late := produceReq(topic, 1, batch(t, record.BatchOptions{}, 1, 4))
	ctx := ctxT(t)
	timer := time.AfterFunc(300*time.Millisecond, func() {
		defer close(produced)
		if resp, err := late.RequestWith(ctx, cl); err == nil && resp.Topics[0].Partitions[0].ErrorCode == 0 {
			produced <- time.Now()
		}
	})
	defer timer.Stop()
	start := time.Now()
	resp := fetchRaw(t, cl, 11, int32(maxWait/time.Millisecond), 1<<20,
		map[string][]fetchAt{topic: {{0, 0, 1 << 20}, {1, 0, 1 << 20}}})
	took := time.Since(start)
	at, ok := <-produced
	if !ok {
		t.Fatal("the late produce failed")
	}
	ps := resp.Topics[0].Partitions
	if len(ps[0].RecordBatches) != 0 || len(ps[1].RecordBatches) == 0 || ps[1].HighWatermark != 1 {
		t.Fatalf("partition 0: %d bytes, partition 1: %d bytes hw %d", len(ps[0].RecordBatches), len(ps[1].RecordBatches), ps[1].HighWatermark)
	}
	if took >= maxWait/2 {
		t.Fatalf("the fetch took %v, though partition 1 got data after %v", took, at.Sub(start))
	}
}

// TestFetchMaxBytes: MaxBytes bounds the whole answer across partitions;
// the first partition with data gets at least one batch even if it is
// larger (KIP-74), a later one only what fits; PartitionMaxBytes bounds
// each partition.
func TestFetchMaxBytes(t *testing.T) {
	topic := createTopic(t, 3, nil)
	cl := newClient(t)
	for p := range int32(3) {
		produceN(t, cl, topic, p, 5, 1000)
	}
	all := []fetchAt{{0, 0, 1 << 20}, {1, 0, 1 << 20}, {2, 0, 1 << 20}}
	total := func(resp *kmsg.FetchResponse) (n int, per []int) {
		for _, sp := range resp.Topics[0].Partitions {
			if sp.ErrorCode != 0 {
				t.Fatalf("partition %d: %v", sp.Partition, kerr.ErrorForCode(sp.ErrorCode))
			}
			if sp.HighWatermark != 5 || sp.LastStableOffset != 5 || sp.LogStartOffset != 0 {
				t.Fatalf("partition %d: hw %d lso %d start %d", sp.Partition, sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset)
			}
			n += len(sp.RecordBatches)
			per = append(per, len(sp.RecordBatches))
		}
		return n, per
	}
	full, per := total(fetchRaw(t, cl, 11, 0, 1<<20, map[string][]fetchAt{topic: all}))
	one := per[0] / 5 // one batch's size
	if per[0] == 0 || per[1] != per[0] || per[2] != per[0] {
		t.Fatalf("unbounded fetch: %v", per)
	}
	for _, maxBytes := range []int32{int32(one * 7), int32(full - 1), int32(one + one/2)} {
		n, per := total(fetchRaw(t, cl, 11, 0, maxBytes, map[string][]fetchAt{topic: all}))
		if n > int(maxBytes) || n < int(maxBytes)-one {
			t.Errorf("MaxBytes %d: %d bytes %v", maxBytes, n, per)
		}
	}
	// A first batch larger than MaxBytes still comes; nothing else does.
	if n, per := total(fetchRaw(t, cl, 11, 0, 10, map[string][]fetchAt{topic: all})); n != one || per[0] != one {
		t.Errorf("MaxBytes 10: %v, want one batch (%d bytes) from partition 0", per, one)
	}
	// PartitionMaxBytes: two batches per partition.
	two := int32(2 * one)
	if _, per := total(fetchRaw(t, cl, 11, 0, 1<<20, map[string][]fetchAt{topic: {{0, 0, two}, {1, 0, two}, {2, 0, two}}})); !slices.Equal(per, []int{2 * one, 2 * one, 2 * one}) {
		t.Errorf("PartitionMaxBytes %d: %v", two, per)
	}
	// A later partition whose first batch does not fit gets nothing.
	if _, per := total(fetchRaw(t, cl, 11, 0, 1<<20, map[string][]fetchAt{topic: {{0, 0, two}, {1, 0, 10}, {2, 0, two}}})); !slices.Equal(per, []int{2 * one, 0, 2 * one}) {
		t.Errorf("PartitionMaxBytes 10 on partition 1: %v", per)
	}
}

// TestFetchErrors: per-partition and session error codes.
func TestFetchErrors(t *testing.T) {
	topic := createTopic(t, 1, nil)
	cl := newClient(t)
	produceN(t, cl, topic, 0, 2, 10)
	cases := []struct {
		name  string
		parts map[string][]fetchAt
		want  error
	}{
		{"unknown topic", map[string][]fetchAt{"no-such-topic": {{0, 0, 1 << 20}}}, kerr.UnknownTopicOrPartition},
		{"bad partition", map[string][]fetchAt{topic: {{1, 0, 1 << 20}}}, kerr.UnknownTopicOrPartition},
		{"past the end", map[string][]fetchAt{topic: {{0, 3, 1 << 20}}}, kerr.OffsetOutOfRange},
		{"negative offset", map[string][]fetchAt{topic: {{0, -1, 1 << 20}}}, kerr.OffsetOutOfRange},
		{"at the end", map[string][]fetchAt{topic: {{0, 2, 1 << 20}}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			resp := fetchRaw(t, cl, 11, 300, 1<<20, c.parts)
			sp := resp.Topics[0].Partitions[0]
			if err := kerr.ErrorForCode(sp.ErrorCode); !errors.Is(err, c.want) && (c.want != nil || err != nil) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if c.want != nil && time.Since(start) > 250*time.Millisecond {
				t.Errorf("an error waited %v: it should answer at once", time.Since(start))
			}
			if sp.RecordBatches == nil {
				t.Errorf("null record set (librdkafka reads it as malformed)")
			}
		})
	}

	t.Run("sessions", func(t *testing.T) {
		for _, c := range []struct {
			id, epoch int32
			want      error
		}{{0, 0, nil}, {0, -1, nil}, {5, 1, kerr.FetchSessionIDNotFound}, {0, 3, kerr.FetchSessionIDNotFound}} {
			req := kmsg.NewPtrFetchRequest()
			req.SetVersion(11)
			req.ReplicaID, req.MaxBytes, req.SessionID, req.SessionEpoch = -1, 1<<20, c.id, c.epoch
			resp, err := req.RequestWith(ctxT(t), cl)
			if err != nil {
				t.Fatal(err)
			}
			if err := kerr.ErrorForCode(resp.ErrorCode); !errors.Is(err, c.want) && (c.want != nil || err != nil) {
				t.Errorf("session %d epoch %d: %v, want %v", c.id, c.epoch, err, c.want)
			}
			if resp.SessionID != 0 {
				t.Errorf("session %d epoch %d: answered session %d, want 0 (no sessions)", c.id, c.epoch, resp.SessionID)
			}
		}
	})
}
