package broker

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

func TestQueueReceiveAck(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 3)
	for p := int32(0); p < 3; p++ {
		produceN(t, b, "jobs", p, 100, 0, nil)
	}
	mustQueue(t, b, "jobs", "workers", queue.Settings{})
	seen := map[[2]int64]bool{}
	for len(seen) < 300 {
		msgs := receive(t, b, "jobs", "workers", "m1", 64, time.Second)
		if len(msgs) == 0 {
			t.Fatalf("receive returned nothing after %d records", len(seen))
		}
		for _, m := range msgs {
			k := [2]int64{int64(m.Partition), m.Offset}
			if seen[k] {
				t.Fatalf("%v delivered twice", k)
			}
			seen[k] = true
			if m.Deliveries != 1 {
				t.Fatalf("first delivery of %v has count %d", k, m.Deliveries)
			}
		}
		n, err := b.QueueAck(ctxT(t), SettleRequest{Topic: "jobs", Group: "workers", Member: "m1", Offsets: refs(msgs...)})
		if err != nil || n != len(msgs) {
			t.Fatalf("ack: %d, %v; want %d", n, err, len(msgs))
		}
	}
	if msgs := receive(t, b, "jobs", "workers", "m1", 10, 50*time.Millisecond); len(msgs) != 0 {
		t.Fatalf("received %d records after all were acked", len(msgs))
	}
	d, err := b.DescribeQueueGroup(ctxT(t), "jobs", "workers")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Partitions {
		if p.Backlog != 0 || p.Floor != 100 || p.Acked != 100 {
			t.Fatalf("partition %d: %+v, want floor 100, 100 acked, backlog 0", p.Partition, p)
		}
	}
	// The state survives a restart: nothing is delivered again.
	qn.restart()
	if msgs := receive(t, qn.b, "jobs", "workers", "m1", 10, 50*time.Millisecond); len(msgs) != 0 {
		t.Fatalf("received %d records after a restart", len(msgs))
	}
	// A second group on the same topic gets every record (pub/sub).
	mustQueue(t, qn.b, "jobs", "audit", queue.Settings{})
	got := 0
	for got < 300 {
		msgs := receive(t, qn.b, "jobs", "audit", "a1", 1000, time.Second)
		if len(msgs) == 0 {
			t.Fatalf("second group got %d of 300", got)
		}
		got += len(msgs)
	}
}

func TestQueueLeaseExpiry(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 1)
	produceN(t, b, "jobs", 0, 1, 0, nil)
	mustQueue(t, b, "jobs", "g", queue.Settings{AckTimeoutMs: 200})
	m := receive(t, b, "jobs", "g", "m1", 1, 0)
	if len(m) != 1 {
		t.Fatalf("got %d records", len(m))
	}
	start := time.Now()
	m2 := receive(t, b, "jobs", "g", "m2", 1, 2*time.Second)
	if len(m2) != 1 || m2[0].Deliveries != 2 {
		t.Fatalf("after expiry got %+v, want the record with 2 deliveries", m2)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("redelivered %v after the first delivery, before the ack timeout", el)
	}
	// A nack from the member whose lease expired is ignored; m2's extend works.
	if n, _ := b.QueueNack(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m1", Offsets: refs(m...)}); n != 0 {
		t.Fatalf("stale nack settled %d records", n)
	}
	if n, err := b.QueueExtend(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m2", Offsets: refs(m2...), Delay: time.Second}); n != 1 || err != nil {
		t.Fatalf("extend: %d, %v", n, err)
	}
	if got := receive(t, b, "jobs", "g", "m3", 1, 400*time.Millisecond); len(got) != 0 {
		t.Fatal("an extended lease was handed to another member")
	}
}

// Test 2 of the issue: backoff and delay.
func TestQueueBackoffAndDelay(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 1)
	mustQueue(t, b, "jobs", "g", queue.Settings{BackoffInitialMs: 300, BackoffMaxMs: 10000, MaxDeliveries: 10})
	produceN(t, b, "jobs", 0, 1, 0, nil)
	// Backoff: 300 ms after the first delivery, 600 ms after the second.
	m := receive(t, b, "jobs", "g", "m", 1, time.Second)
	for i, want := range []time.Duration{300 * time.Millisecond, 600 * time.Millisecond} {
		if len(m) != 1 || m[0].Deliveries != int32(i+1) {
			t.Fatalf("round %d: got %+v", i, m)
		}
		nacked := time.Now()
		if n, err := b.QueueNack(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(m...), Error: "boom"}); n != 1 || err != nil {
			t.Fatalf("nack: %d, %v", n, err)
		}
		m = receive(t, b, "jobs", "g", "m", 1, 5*time.Second)
		el := time.Since(nacked)
		if len(m) != 1 {
			t.Fatalf("round %d: not redelivered", i)
		}
		if el < want {
			t.Fatalf("round %d: redelivered %v after the nack, before its backoff %v", i, el, want)
		}
		if el > want+want/5+time.Second {
			t.Fatalf("round %d: redelivered only %v after the nack (backoff %v)", i, el, want)
		}
	}
	b.QueueAck(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(m...)})
	produceN(t, b, "jobs", 0, 1, 0, nil)
	// An explicit nack delay wins over the backoff.
	m = receive(t, b, "jobs", "g", "m", 1, time.Second)
	b.QueueNack(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(m...), Delay: 100 * time.Millisecond})
	start := time.Now()
	if m = receive(t, b, "jobs", "g", "m", 1, 2*time.Second); len(m) != 1 || time.Since(start) > 90*time.Millisecond+time.Second {
		t.Fatalf("nack with delay: got %d records after %v", len(m), time.Since(start))
	}
	b.QueueAck(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(m...)})

	// Delay: a record with a deliver-at 700 ms ahead comes no earlier and
	// within a second after; a record behind it is not held up. The header
	// holds milliseconds, so the time it names is at, not time.Now()+700ms
	// (up to a millisecond later, which a delivery could come before).
	at := time.UnixMilli(time.Now().Add(700 * time.Millisecond).UnixMilli())
	produceN(t, b, "jobs", 0, 1, 0, func(int) []record.Header {
		return []record.Header{{Key: HeaderDeliverAt, Value: []byte(strconv.FormatInt(at.UnixMilli(), 10))}}
	})
	produceN(t, b, "jobs", 0, 1, 0, nil)
	m = receive(t, b, "jobs", "g", "m", 10, time.Second)
	if len(m) != 1 || header(recordOf(m[0]), HeaderDeliverAt) != "" {
		t.Fatalf("before the deliver-at time got %d records (want only the undelayed one)", len(m))
	}
	b.QueueAck(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(m...)})
	m = receive(t, b, "jobs", "g", "m", 10, 3*time.Second)
	now := time.Now()
	if len(m) != 1 {
		t.Fatal("the delayed record was not delivered")
	}
	if now.Before(at) || now.After(at.Add(time.Second)) {
		t.Fatalf("delayed record delivered at %v, due at %v", now.Sub(at), at)
	}
	// Stream consumers see it at its offset, at once.
	if vals := values(t, b, "jobs", 0, 0); len(vals) != 4 {
		t.Fatalf("the log holds %d records, want 4", len(vals))
	}
}

func recordOf(m QueueMessage) record.Record {
	return record.Record{Key: m.Key, Value: m.Value, Headers: m.Headers}
}

// A queue group whose unread records retention deleted moves past them
// (and counts them) instead of waiting forever for records that no longer
// exist.
func TestQueueSkipsRecordsRetentionDeleted(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	if _, err := b.CreateTopic(ctxT(t), "short", topic.Config{Partitions: 1, RetentionBytes: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	mustQueue(t, b, "short", "g", queue.Settings{})
	produceN(t, b, "short", 0, 100, 0, nil)
	m := receive(t, b, "short", "g", "m", 10, time.Second)
	if len(m) != 10 {
		t.Fatalf("received %d records, want 10", len(m))
	}
	if n, err := b.QueueAck(ctxT(t), SettleRequest{Topic: "short", Group: "g", Member: "m", Offsets: refs(m...)}); n != 10 || err != nil {
		t.Fatalf("ack: %d, %v", n, err)
	}
	produceN(t, b, "short", 0, 5000, 0, nil)
	if b.EnforceRetention() == 0 {
		t.Fatal("retention deleted nothing")
	}
	lp, err := b.localPartition(ctxT(t), "short", 0)
	if err != nil {
		t.Fatal(err)
	}
	start, hwm := lp.Log.StartOffset(), lp.Log.HighWatermark()
	if start <= 10 {
		t.Fatalf("log start %d: retention did not pass the group's position", start)
	}
	var got []int64
	for {
		m := receive(t, b, "short", "g", "m", 1000, 200*time.Millisecond)
		if len(m) == 0 {
			break
		}
		for _, r := range m {
			got = append(got, r.Offset)
		}
		b.QueueAck(ctxT(t), SettleRequest{Topic: "short", Group: "g", Member: "m", Offsets: refs(m...)})
	}
	if int64(len(got)) != hwm-start || len(got) == 0 || got[0] != start {
		t.Fatalf("after retention the group got %d records from %v; want %d from %d", len(got), got[:min(len(got), 1)], hwm-start, start)
	}
	if v := testutil.ToFloat64(b.m.queueSkipped.WithLabelValues("g", "short")); v != float64(start-10) {
		t.Fatalf("skipped records metric %v, want %d", v, start-10)
	}
}
