package broker

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/queue"
)

// TestQueueReadAheadRecords checks that receives served from the
// read-ahead hand out each record with its own bytes, across many reads
// (the records are larger than readAheadBytes together), with receives
// of every size and redeliveries (nacks) among them, and that the group
// gets every record exactly once acked.
func TestQueueReadAheadRecords(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "ra", 1)
	mustQueue(t, b, "ra", "g", queue.Settings{MaxDeliveries: 100})
	const n = 1500
	pad := bytes.Repeat([]byte{'.'}, 700)
	producePadded(t, b, "ra", n, 400, pad)
	rng := rand.New(rand.NewPCG(3, 4))
	acked := map[int64]bool{}
	for rounds := 0; len(acked) < n; rounds++ {
		if rounds > 10000 {
			t.Fatalf("acked %d of %d records after %d receives", len(acked), n, rounds)
		}
		msgs := receive(t, b, "ra", "g", "m", 1+rng.IntN(700), time.Second)
		var ack, nack []QueueMessage
		for _, m := range msgs {
			if want := fmt.Sprintf("v-%d-", m.Offset); !bytes.HasPrefix(m.Value, []byte(want)) || len(m.Value) != len(want)+len(pad) {
				t.Fatalf("record %d came with value %.20q…, want %q…", m.Offset, m.Value, want)
			}
			if acked[m.Offset] {
				t.Fatalf("record %d handed out again after its ack", m.Offset)
			}
			if rng.IntN(10) == 0 {
				nack = append(nack, m)
			} else {
				ack = append(ack, m)
				acked[m.Offset] = true
			}
		}
		if len(ack) > 0 {
			if _, err := b.QueueAck(ctxT(t), SettleRequest{Topic: "ra", Group: "g", Member: "m", Offsets: refs(ack...)}); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
		if len(nack) > 0 {
			if _, err := b.QueueNack(ctxT(t), SettleRequest{Topic: "ra", Group: "g", Member: "m", Offsets: refs(nack...),
				Delay: time.Millisecond}); err != nil {
				t.Fatalf("nack: %v", err)
			}
		}
	}
}

// TestQueueReceiveLargeRecordsFillsWant checks that a receive of records
// larger than readAheadBytes holds many of gets as many as it asks for when
// the log has them: the leader reads ahead again until it has them (up to
// maxReadAheadBytes), instead of answering with one read's worth.
func TestQueueReceiveLargeRecordsFillsWant(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "big", 1)
	mustQueue(t, b, "big", "g", queue.Settings{MaxDeliveries: 5})
	const n, perBatch, want = 1800, 100, 800
	pad := bytes.Repeat([]byte{'.'}, 1024)
	if want*len(pad) <= 2*readAheadBytes || want*(len(pad)+64) > maxReadAheadBytes {
		t.Fatalf("the test needs %d records of %d bytes to span several reads and fit maxReadAheadBytes", want, len(pad))
	}
	producePadded(t, b, "big", n, perBatch, pad)
	var next int64
	for round := 0; next < n; round++ {
		msgs := receive(t, b, "big", "g", "m", want, time.Second)
		if exp := min(want, n-int(next)); len(msgs) != exp {
			t.Fatalf("receive %d from offset %d got %d records, want %d", round, next, len(msgs), exp)
		}
		for _, m := range msgs {
			if m.Offset != next || !bytes.HasPrefix(m.Value, fmt.Appendf(nil, "v-%d-", next)) {
				t.Fatalf("receive %d: record %d (%.12q…), want record %d", round, m.Offset, m.Value, next)
			}
			next++
		}
		if _, err := b.QueueAck(ctxT(t), SettleRequest{Topic: "big", Group: "g", Member: "m", Offsets: refs(msgs...)}); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
}

// producePadded writes n records to partition 0 of topic in batches of
// perBatch, record i with the value "v-i-" followed by pad.
func producePadded(t *testing.T, b *Broker, topic string, n, perBatch int, pad []byte) {
	t.Helper()
	for i := 0; i < n; {
		var recs []record.Record
		for ; i < n && len(recs) < perBatch; i++ {
			recs = append(recs, record.Record{Value: append(fmt.Appendf(nil, "v-%d-", i), pad...), Timestamp: time.Now()})
		}
		batch, err := record.AppendBatch(nil, recs, record.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Produce(ctxT(t), topic, 0, batch); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// TestReadAheadAt checks the lookup on read-aheads with gaps in their
// offsets, where the record at off is not at its distance from the first.
func TestReadAheadAt(t *testing.T) {
	ra := &readAhead{}
	for _, off := range []int64{10, 11, 13, 14, 20} {
		ra.recs = append(ra.recs, record.Record{Offset: off})
	}
	for _, tc := range []struct {
		off   int64
		first int64 // offset of the first record returned; -1 for none
	}{{9, 10}, {10, 10}, {11, 11}, {12, 13}, {13, 13}, {14, 14}, {15, 20}, {20, 20}, {21, -1}} {
		got := ra.at(tc.off)
		first := int64(-1)
		if len(got) > 0 {
			first = got[0].Offset
		}
		if first != tc.first {
			t.Errorf("at(%d) starts at %d, want %d", tc.off, first, tc.first)
		}
		if _, ok := ra.find(tc.off); ok != (first == tc.off) {
			t.Errorf("find(%d) = %v", tc.off, ok)
		}
	}
	if got := (*readAhead)(nil).at(5); got != nil {
		t.Errorf("nil read-ahead: %v", got)
	}
}
