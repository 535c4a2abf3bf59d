package broker

import (
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/queue"
)

func TestQueueDeadLettersAndRedrive(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 2)
	for p := int32(0); p < 2; p++ {
		produceN(t, b, "jobs", p, 3, 1, func(i int) []record.Header {
			return []record.Header{{Key: "trace", Value: []byte("t" + strconv.Itoa(i))}}
		})
	}
	mustQueue(t, b, "jobs", "g", queue.Settings{MaxDeliveries: 2, AckTimeoutMs: 100, BackoffInitialMs: 1, BackoffMaxMs: 1})
	ctx := ctxT(t)
	all := receive(t, b, "jobs", "g", "m", 6, time.Second)
	if len(all) != 6 {
		t.Fatalf("got %d of 6", len(all))
	}
	var rej, nack, ack, expire []QueueMessage
	for _, m := range all {
		switch string(m.Value) {
		case "v-0":
			rej = append(rej, m)
		case "v-1":
			nack = append(nack, m)
		case "v-2":
			if m.Partition == 0 {
				ack = append(ack, m)
			} else {
				expire = append(expire, m)
			}
		}
	}
	if n, err := b.QueueReject(ctx, SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(rej...), Error: "bad input"}); n != 2 || err != nil {
		t.Fatalf("reject: %d, %v", n, err)
	}
	b.QueueAck(ctx, SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(ack...)})
	b.QueueNack(ctx, SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(nack...), Error: "first"})
	// Second deliveries: the nacked ones (after backoff) and the expired one.
	// The nacked ones are nacked again as they come, within their lease
	// (100 ms), not after the expired one came: their leases would end
	// first.
	var second []QueueMessage
	wait.For(t, 3*time.Second, "second deliveries", func() bool {
		msgs := receive(t, b, "jobs", "g", "m", 10, 200*time.Millisecond)
		var again []QueueMessage
		for _, m := range msgs {
			if string(m.Value) == "v-1" {
				again = append(again, m)
			}
		}
		if len(again) > 0 {
			b.QueueNack(ctx, SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(again...), Error: "second"})
		}
		second = append(second, msgs...)
		return len(second) >= 3
	})
	for _, m := range second {
		if m.Deliveries != 2 {
			t.Fatalf("second delivery of %d/%d has count %d", m.Partition, m.Offset, m.Deliveries)
		}
	}
	for _, e := range expire {
		if !slices.ContainsFunc(second, func(m QueueMessage) bool { return m.Partition == e.Partition && m.Offset == e.Offset }) {
			t.Fatalf("the expired lease of %d/%d was not delivered again", e.Partition, e.Offset)
		}
	}
	// v-2 of partition 1 is never acked: its lease expires at max deliveries.
	var dl []record.Record
	wait.For(t, 5*time.Second, "5 dead letters", func() bool {
		if _, err := b.knownTopic("jobs.g.dlq"); err != nil {
			return false
		}
		dl = dlqRecords(t, b, "jobs.g.dlq")
		return len(dl) >= 5
	})
	// A record is marked dead after its dead letter is written, so once
	// every record is settled no dead letter is still to come: exactly
	// five, none twice.
	wait.For(t, 5*time.Second, "every record settled", func() bool {
		d, err := b.DescribeQueueGroup(ctxT(t), "jobs", "g")
		for _, p := range d.Partitions {
			if p.Backlog != 0 || p.Floor != 3 {
				return false
			}
		}
		return err == nil && len(d.Partitions) == 2
	})
	if dl = dlqRecords(t, b, "jobs.g.dlq"); len(dl) != 5 {
		t.Fatalf("%d dead letters, want 5", len(dl))
	}
	for _, r := range dl {
		reason, errText, deliv := header(r, HeaderDLQReason), header(r, HeaderDLQError), header(r, HeaderDLQDeliveries)
		want := map[string][3]string{
			"v-0": {"rejected", "bad input", "1"},
			"v-1": {"max-deliveries", "second", "2"},
			"v-2": {"max-deliveries", "ack timeout", "2"},
		}[string(r.Value)]
		if reason != want[0] || errText != want[1] || deliv != want[2] {
			t.Errorf("dead letter %s: reason %q error %q deliveries %q, want %v", r.Value, reason, errText, deliv, want)
		}
		if header(r, HeaderDLQGroup) != "g" || header(r, HeaderDLQTopic) != "jobs" || header(r, "trace") == "" ||
			string(r.Key) != "k-0" || header(r, HeaderDLQOffset) == "" || header(r, HeaderDLQPartition) == "" {
			t.Errorf("dead letter %s lacks its headers or key: %+v", r.Value, r.Headers)
		}
	}
	// Redrive two, then the rest: they come back to their partitions with a
	// trace header and are delivered again.
	// The rejected ones (v-0 of both partitions) by reason first; then two, then the rest: each
	// dead letter moves once.
	if _, err := b.RedriveQueueGroup(ctx, "jobs", "g", "bogus", 0, nil); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("redrive with an unknown reason: %v", err)
	}
	if n, err := b.RedriveQueueGroup(ctx, "jobs", "g", "rejected", 0, nil); n != 2 || err != nil {
		t.Fatalf("redrive rejected: %d, %v", n, err)
	}
	if n, _ := b.RedriveQueueGroup(ctx, "jobs", "g", "rejected", 0, nil); n != 0 {
		t.Fatalf("a second redrive of rejected moved %d", n)
	}
	if n, err := b.RedriveQueueGroup(ctx, "jobs", "g", "", 2, nil); n != 2 || err != nil {
		t.Fatalf("redrive 2: %d, %v", n, err)
	}
	if n, err := b.RedriveQueueGroup(ctx, "jobs", "g", "", 0, nil); n != 1 || err != nil {
		t.Fatalf("redrive rest: %d, %v", n, err)
	}
	if n, _ := b.RedriveQueueGroup(ctx, "jobs", "g", "", 0, nil); n != 0 {
		t.Fatalf("a third redrive moved %d", n)
	}
	back := receive(t, b, "jobs", "g", "m", 10, time.Second)
	if len(back) != 5 {
		t.Fatalf("%d redriven records delivered, want 5", len(back))
	}
	for _, m := range back {
		r := recordOf(m)
		if header(r, HeaderRedrivenFrom) == "" || header(r, HeaderDLQReason) != "" || header(r, "trace") == "" || m.Deliveries != 1 {
			t.Errorf("redriven record %s: headers %+v, deliveries %d", m.Value, m.Headers, m.Deliveries)
		}
	}
}

// A crash between the dead-letter write and the dead command must not
// write the dead letter twice: the rewrite is an idempotent duplicate.
func TestQueueDeadLetterIdempotent(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 1)
	produceN(t, b, "jobs", 0, 10, 0, nil)
	mustQueue(t, b, "jobs", "g", queue.Settings{})
	var fails atomic.Int32
	fails.Store(3)
	hook := func() error {
		if fails.Add(-1) >= 0 {
			return errors.New("crash after the write")
		}
		return nil
	}
	testHookDeadLettersWritten.Store(&hook)
	t.Cleanup(func() { testHookDeadLettersWritten.Store(nil) })
	m := receive(t, b, "jobs", "g", "m", 4, time.Second)
	if n, err := b.QueueReject(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(m[:2]...)}); n != 2 || err != nil {
		t.Fatalf("reject: %d %v", n, err)
	}
	wait.For(t, 5*time.Second, "a failed write", func() bool { return fails.Load() <= 2 })
	qn.restart() // the new leader finds the dead marks and writes them again
	b = qn.b
	// After a restart the leases are unknown: any member may settle.
	if n, err := b.QueueReject(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "other", Offsets: refs(m[2:]...)}); n != 2 || err != nil {
		t.Fatalf("reject after restart: %d %v", n, err)
	}
	wait.For(t, 5*time.Second, "the dead marks to be written", func() bool {
		d, _ := b.DescribeQueueGroup(ctxT(t), "jobs", "g")
		return len(d.Partitions) == 1 && d.Partitions[0].DeadLetters == 4
	})
	dl := dlqRecords(t, b, "jobs.g.dlq")
	if len(dl) != 4 || string(dl[0].Value) != "v-0" || string(dl[1].Value) != "v-1" || string(dl[3].Value) != "v-3" {
		var vals []string
		for _, r := range dl {
			vals = append(vals, string(r.Value))
		}
		t.Fatalf("dead-letter topic holds %v, want [v-0 v-1 v-2 v-3] once each", vals)
	}
}

func TestQueueReset(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 1)
	produceN(t, b, "jobs", 0, 50, 0, nil)
	mustQueue(t, b, "jobs", "g", queue.Settings{})
	ctx := ctxT(t)
	m := receive(t, b, "jobs", "g", "m", 50, time.Second)
	b.QueueAck(ctx, SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(m[:40]...)})
	if _, err := b.ResetQueueGroup(ctx, "jobs", "g", ResetSpec{Offset: 30}, nil); err != nil {
		t.Fatal(err)
	}
	// Acks of records delivered before the reset are ignored.
	if n, _ := b.QueueAck(ctx, SettleRequest{Topic: "jobs", Group: "g", Member: "m", Offsets: refs(m[40:]...)}); n != 0 {
		t.Fatalf("%d stale acks taken after the reset", n)
	}
	m = receive(t, b, "jobs", "g", "m", 100, time.Second)
	if len(m) != 20 || m[0].Offset != 30 || m[0].Deliveries != 1 {
		t.Fatalf("after reset to 30 got %d records from %d", len(m), m[0].Offset)
	}
	if _, err := b.ResetQueueGroup(ctx, "jobs", "g", ResetSpec{Spec: SpecEarliest}, nil); err != nil {
		t.Fatal(err)
	}
	if m = receive(t, b, "jobs", "g", "m", 100, time.Second); len(m) != 50 {
		t.Fatalf("after reset to earliest got %d records", len(m))
	}
	if _, err := b.ResetQueueGroup(ctx, "jobs", "g", ResetSpec{Spec: SpecLatest}, nil); err != nil {
		t.Fatal(err)
	}
	if m = receive(t, b, "jobs", "g", "m", 100, 50*time.Millisecond); len(m) != 0 {
		t.Fatalf("after reset to latest got %d records", len(m))
	}
	if _, err := b.QueueReceive(ctx, ReceiveRequest{Topic: "jobs", Group: "nope", Member: "m", Partition: -1}); !errors.Is(err, ErrUnknownQueueGroup) {
		t.Fatalf("unknown group: %v", err)
	}
}
