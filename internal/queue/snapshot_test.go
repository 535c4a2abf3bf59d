package queue

import (
	"encoding/json"
	"errors"
	"testing"
)

// goldenSnapshot is the queue part of a data group's snapshot manifest as
// the code before package queue wrote it, after the commands of
// TestSnapshotGolden: snapshots on disk hold it, so it must restore to
// the same state, and the same commands must snapshot to the same bytes.
const goldenSnapshot = `[{"group":"g","gen":1,"floor":2,"next":7,"dlq_seq":2,"acked":3,"dead":1,"delivered":8,"redelivered":1,"slots":[{"d":2,"o":true,"nb":1700000000123,"e":"err \"x\""},{"d":1,"s":1},{"d":1,"s":2,"r":2},{"d":1,"s":3,"r":2,"q":1},{"d":1,"o":true}]},{"group":"h","gen":1,"floor":3,"next":3,"dlq_seq":0,"acked":0,"dead":0,"delivered":0,"redelivered":0}]`

func TestSnapshotGolden(t *testing.T) {
	t.Parallel()
	var qs Set
	apply := func(c Cmd) {
		t.Helper()
		if err := qs.Apply(&c); err != nil {
			t.Fatal(err)
		}
	}
	apply(Cmd{Op: OpInit, Group: "g", Gen: 1})
	apply(Cmd{Op: OpInit, Group: "h", Gen: 1, Arg: 3})
	apply(Cmd{Op: OpDeliver, Group: "g", Gen: 1, Offsets: []int64{0, 1, 2, 3, 4, 5, 6}})
	apply(Cmd{Op: OpAck, Group: "g", Gen: 1, Offsets: []int64{0, 1, 3}})
	apply(Cmd{Op: OpNack, Group: "g", Gen: 1, Offsets: []int64{2}, Times: []int64{1700000000123}, Text: `err "x"`})
	apply(Cmd{Op: OpDeliver, Group: "g", Gen: 1, Offsets: []int64{2}})
	apply(Cmd{Op: OpDeadMark, Group: "g", Gen: 1, Offsets: []int64{4}, Reason: ReasonRejected})
	apply(Cmd{Op: OpDeadMark, Group: "g", Gen: 1, Offsets: []int64{5}, Reason: ReasonRejected})
	apply(Cmd{Op: OpDead, Group: "g", Gen: 1, Offsets: []int64{5}})
	if got := mustJSON(t, qs.Snapshot()); got != goldenSnapshot {
		t.Fatalf("snapshot\n %s\nwant\n %s", got, goldenSnapshot)
	}
	var snaps []Snapshot
	if err := json.Unmarshal([]byte(goldenSnapshot), &snaps); err != nil {
		t.Fatal(err)
	}
	var restored Set
	if err := restored.Restore(snaps); err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, restored.Snapshot()); got != goldenSnapshot {
		t.Fatalf("restored snapshot\n %s\nwant\n %s", got, goldenSnapshot)
	}
	// The restored state goes on as the original: the same command gives
	// the same state.
	c := Cmd{Op: OpAck, Group: "g", Gen: 1, Offsets: []int64{2, 6}}
	for _, s := range []*Set{&qs, &restored} {
		if err := s.Apply(&c); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := mustJSON(t, qs.Snapshot()), mustJSON(t, restored.Snapshot()); a != b {
		t.Fatalf("after one more command the original is\n %s\nand the restored\n %s", a, b)
	}

	bad := snaps[0]
	bad.Next++
	if _, err := Restore(bad); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("a snapshot with a slot missing: %v, want ErrCorruptSnapshot", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
