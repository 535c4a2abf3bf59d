package broker

import (
	"context"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/queue"
)

// A settle whose raft command fails (here its context ends before the
// command is applied) leaves the record leased to its member: the member
// still holds it and may try again, so no other member gets it before its
// lease ends. Releasing the lease on failure handed it straight to the
// next receive: "record 0 leased to m2 while m1's lease was live".
func TestQueueFailedSettleKeepsLease(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 1)
	produceN(t, b, "jobs", 0, 1, 0, nil)
	mustQueue(t, b, "jobs", "g", queue.Settings{AckTimeoutMs: 30_000})
	msgs := receive(t, b, "jobs", "g", "m1", 1, time.Second)
	if len(msgs) != 1 {
		t.Fatalf("received %d records, want 1", len(msgs))
	}
	for _, op := range []struct {
		name string
		run  func(context.Context, SettleRequest) (int, error)
	}{
		{"ack", b.QueueAck}, {"nack", b.QueueNack}, {"reject", b.QueueReject},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n, err := op.run(ctx, SettleRequest{Topic: "jobs", Group: "g", Member: "m1", Offsets: refs(msgs...)})
		if err == nil {
			t.Fatalf("%s with an ended context: settled %d, no error; want the command to fail", op.name, n)
		}
		if got := receive(t, b, "jobs", "g", "m2", 1, 0); len(got) != 0 {
			t.Fatalf("after a failed %s by m1: record %d leased to m2 (delivery %d) while m1's lease was live",
				op.name, got[0].Offset, got[0].Deliveries)
		}
	}
	// m1 still holds it: its ack goes through.
	if n, err := b.QueueAck(ctxT(t), SettleRequest{Topic: "jobs", Group: "g", Member: "m1", Offsets: refs(msgs...)}); err != nil || n != 1 {
		t.Fatalf("ack by m1 after the failed settles: %d, %v; want 1", n, err)
	}
}
