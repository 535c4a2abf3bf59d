package broker

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/queue"
)

// holdDeadLetters keeps the queue loop from writing dead letters until the
// returned func is called, so that dead marks pile up first.
func holdDeadLetters(t *testing.T) (release func()) {
	t.Helper()
	var held atomic.Bool
	held.Store(true)
	hook := func() error {
		if held.Load() {
			return errors.New("dead-letter partition held by the test")
		}
		return nil
	}
	testHookDeadLettersWrite.Store(&hook)
	t.Cleanup(func() { testHookDeadLettersWrite.Store(nil) })
	return func() { held.Store(false) }
}

// crashAfterWrites makes the first n dead-letter writes stop before their
// dead command, as a crash there would; it returns how many are left.
func crashAfterWrites(t *testing.T, n int32) *atomic.Int32 {
	t.Helper()
	var left atomic.Int32
	left.Store(n)
	hook := func() error {
		if left.Add(-1) >= 0 {
			return errors.New("crash after the write")
		}
		return nil
	}
	testHookDeadLettersWritten.Store(&hook)
	t.Cleanup(func() { testHookDeadLettersWritten.Store(nil) })
	return &left
}

// rejectDescending receives n records of a one-partition topic and rejects
// them one call at a time, highest offset first.
func rejectDescending(t *testing.T, b *Broker, topic, group string, n int) {
	t.Helper()
	m := receive(t, b, topic, group, "m", n, time.Second)
	if len(m) != n {
		t.Fatalf("received %d of %d", len(m), n)
	}
	for i := n - 1; i >= 0; i-- {
		req := SettleRequest{Topic: topic, Group: group, Member: "m", Offsets: refs(m[i]), Error: "bad"}
		if k, err := b.QueueReject(ctxT(t), req); k != 1 || err != nil {
			t.Fatalf("reject offset %d: %d, %v", m[i].Offset, k, err)
		}
	}
}

// waitSettled waits until partition 0 of the group has every one of n
// records done and returns its describe.
func waitSettled(t *testing.T, b *Broker, topic, group string, n int64) QueuePartition {
	t.Helper()
	var qp QueuePartition
	wait.For(t, 10*time.Second, "every record settled", func() bool {
		d, err := b.DescribeQueueGroup(ctxT(t), topic, group)
		if err != nil || len(d.Partitions) != 1 {
			return false
		}
		qp = d.Partitions[0]
		return qp.Floor == n
	})
	return qp
}

// checkDeadLettersOnce checks that the dead-letter topic holds, once each,
// the dead letters of the given source offsets (of partition 0) and
// nothing else.
func checkDeadLettersOnce(t *testing.T, b *Broker, dlq, topic, group string, offs ...int64) []record.Record {
	t.Helper()
	dl := dlqRecords(t, b, dlq)
	var got, want []string
	for _, r := range dl {
		got = append(got, header(r, HeaderDLQID))
	}
	for _, o := range offs {
		want = append(want, fmt.Sprintf("%s/0/%d/%s", topic, o, group))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("dead-letter topic %s holds %v, want %v once each", dlq, got, want)
	}
	return dl
}

// Records rejected one call at a time in descending offset order, right
// after the group's creation, get dead-letter sequence numbers in the
// opposite order to their offsets. Each must reach the dead-letter topic
// once, and describe's dead count must be the topic's length.
func TestQueueDeadLettersMarkedOutOfOrder(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 1)
	produceN(t, b, "jobs", 0, 6, 0, nil)
	mustQueue(t, b, "jobs", "g", queue.Settings{})
	release := holdDeadLetters(t)
	rejectDescending(t, b, "jobs", "g", 4)
	release()
	b.queue.wake()
	qp := waitSettled(t, b, "jobs", "g", 4)
	dl := checkDeadLettersOnce(t, b, "jobs.g.dlq", "jobs", "g", 0, 1, 2, 3)
	if qp.DeadLetters != uint64(len(dl)) {
		t.Fatalf("describe counts %d dead letters, the topic holds %d", qp.DeadLetters, len(dl))
	}
}

// A crash between the write of out-of-order dead marks and their dead
// command (twice, with a restart between) must not lose or double any.
func TestQueueDeadLettersOutOfOrderCrash(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 1)
	produceN(t, b, "jobs", 0, 6, 0, nil)
	mustQueue(t, b, "jobs", "g", queue.Settings{})
	release := holdDeadLetters(t)
	left := crashAfterWrites(t, 2)
	rejectDescending(t, b, "jobs", "g", 4)
	release()
	b.queue.wake()
	wait.For(t, 5*time.Second, "a write that crashed", func() bool { return left.Load() <= 1 })
	qn.restart()
	b = qn.b
	qp := waitSettled(t, b, "jobs", "g", 4)
	dl := checkDeadLettersOnce(t, b, "jobs.g.dlq", "jobs", "g", 0, 1, 2, 3)
	if qp.DeadLetters != uint64(len(dl)) {
		t.Fatalf("describe counts %d dead letters, the topic holds %d", qp.DeadLetters, len(dl))
	}
}

// A group whose dead-letter topic moves away and back leaves a gap in the
// sequence numbers the first topic saw: the dead letters written after
// the move back must still be written once, across a crash between the
// write and the dead command.
func TestQueueDeadLetterTopicMovedBack(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	mustTopic(t, b, "jobs", 1)
	produceN(t, b, "jobs", 0, 6, 0, nil)
	s := queue.Settings{DeadLetterTopic: "dead-a"}
	mustQueue(t, b, "jobs", "g", s)
	m := receive(t, b, "jobs", "g", "m", 4, time.Second)
	if len(m) != 4 {
		t.Fatalf("received %d of 4", len(m))
	}
	ctx := ctxT(t)
	// Rejects m[i] and waits until its dead letter is written. (After a
	// restart the leases are unknown: any member may settle.)
	member := "m"
	reject := func(i int) {
		t.Helper()
		if k, err := b.QueueReject(ctx, SettleRequest{Topic: "jobs", Group: "g", Member: member, Offsets: refs(m[i])}); k != 1 || err != nil {
			t.Fatalf("reject %d: %d, %v", i, k, err)
		}
		waitSettled(t, b, "jobs", "g", int64(i+1))
	}
	reject(0) // sequence 0 to dead-a
	s.DeadLetterTopic = "dead-b"
	mustQueue(t, b, "jobs", "g", s)
	reject(1) // sequence 1 to dead-b
	s.DeadLetterTopic = "dead-a"
	mustQueue(t, b, "jobs", "g", s)
	left := crashAfterWrites(t, 2)
	reject(2) // sequence 2 to dead-a, which last saw 0
	if left.Load() > 0 {
		t.Fatalf("the crash hook ran %d times, want 2", 2-left.Load())
	}
	// A restarted writer no longer knows the epoch dead-a is at: it finds
	// it (its first tries are fenced) and writes sequence 3 once.
	qn.restart()
	b, member = qn.b, "other"
	crashAfterWrites(t, 1)
	reject(3)
	checkDeadLettersOnce(t, b, "dead-a", "jobs", "g", 0, 2, 3)
	checkDeadLettersOnce(t, b, "dead-b", "jobs", "g", 1)
	d, err := b.DescribeQueueGroup(ctxT(t), "jobs", "g")
	if err != nil || d.Partitions[0].DeadLetters != 4 {
		t.Fatalf("describe: %+v, %v; want 4 dead letters", d.Partitions, err)
	}
}

// A queue group of a topic deleted and created again starts its sequence
// numbers at 0 again; its dead letters, in a dead-letter topic that
// survived, must still all be written (the new group writes as a new
// producer).
func TestQueueDeadLettersGroupRecreated(t *testing.T) {
	qn := openQueueNode(t, t.TempDir(), nil)
	b := qn.b
	ctx := ctxT(t)
	s := queue.Settings{DeadLetterTopic: "dead"}
	for round := range 2 {
		if round > 0 {
			if err := b.DeleteTopic(ctx, "jobs"); err != nil {
				t.Fatal(err)
			}
		}
		mustTopic(t, b, "jobs", 1)
		produceN(t, b, "jobs", 0, 3, 0, nil)
		mustQueue(t, b, "jobs", "g", s)
		rejectDescending(t, b, "jobs", "g", 2)
		waitSettled(t, b, "jobs", "g", 2)
	}
	dl := dlqRecords(t, b, "dead")
	count := map[string]int{}
	for _, r := range dl {
		count[header(r, HeaderDLQID)]++
	}
	if len(dl) != 4 || count["jobs/0/0/g"] != 2 || count["jobs/0/1/g"] != 2 {
		t.Fatalf("dead-letter topic holds %v (%d records), want each of jobs/0/0/g and jobs/0/1/g from both groups", count, len(dl))
	}
}
