package history

import (
	"strings"
	"testing"
	"time"
)

// Each checker must pass a correct history and name each kind of
// violation it exists for; the broken histories below are the faults the
// fault tests look for.

func TestCheckLog(t *testing.T) {
	ok := func(v string, off int64, call, ret int64) Produce {
		return Produce{Value: v, Offset: off, Call: call, Return: ret, Outcome: OK}
	}
	final := map[int32][]string{0: {"a", "b", "c"}}
	good := []Produce{ok("a", 0, 0, 10), ok("b", 1, 5, 20), {Value: "c", Call: 6, Return: 30, Outcome: Unknown}, {Value: "x", Call: 7, Return: 8, Outcome: Failed}}
	cases := []struct {
		name     string
		final    map[int32][]string
		produces []Produce
		reads    []Read
		want     string // "" for no violation
	}{
		{name: "correct", final: final, produces: good, reads: []Read{
			{From: 0, Call: 11, Return: 12, HighWatermark: 1, Values: []string{"a"}},
			{From: 3, Call: 31, Return: 32, OutOfRange: true},
			{From: 1, Call: 1, Return: 2, OutOfRange: true}, // before b was acknowledged
		}},
		{name: "lost", final: map[int32][]string{0: {"a", "c"}}, produces: good, want: `"b" acknowledged at 0/1 is not in the log`},
		{name: "two offsets", final: map[int32][]string{0: {"a", "b", "b", "c"}}, produces: good, want: `"b" is in the log 2 times`},
		{name: "failed but written", final: map[int32][]string{0: {"a", "b", "c", "x"}}, produces: good, want: `"x" whose produce failed`},
		{name: "never produced", final: map[int32][]string{0: {"a", "b", "c", "z"}}, produces: good, want: `"z" at 0/3 was never produced`},
		{name: "offset reused", final: final, produces: []Produce{ok("a", 0, 0, 10), ok("b", 0, 11, 20)}, want: "acknowledged at 0/0 is at 0/1"},
		{name: "out of range after ack", final: final, produces: good, reads: []Read{{From: 1, Call: 21, Return: 22, OutOfRange: true}},
			want: "read(1) answered out of range although produce(b) -> 1 had returned"},
		{name: "dirty read", final: final, produces: good, reads: []Read{{From: 1, Call: 21, Return: 22, HighWatermark: 2, Values: []string{"q"}}},
			want: `saw "q"`},
		{name: "read past the committed log", final: final, produces: good[:2], reads: []Read{{From: 0, Call: 1, Return: 2, HighWatermark: 3}},
			want: "not linearizable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := CheckLog(tc.final, tc.produces, tc.reads)
			got := strings.Join(res.Violations, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("violations:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCheckStream(t *testing.T) {
	cases := []struct {
		name string
		offs []int64
		want string
	}{
		{name: "contiguous", offs: []int64{0, 1, 2, 3}},
		{name: "skip", offs: []int64{0, 1, 3}, want: "skipped 1 records"},
		{name: "replay from the start", offs: []int64{0, 1, 2, 0, 1}, want: "went back 3 records"},
		{name: "short", offs: []int64{0, 1}, want: "stopped at 2, the log ends at 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder()
			for _, o := range tc.offs {
				r.Streamed("c1", 0, o)
			}
			res := r.CheckStream(map[int32]int64{0: 0}, map[int32]int64{0: 4}, "c1")
			got := strings.Join(res.Violations, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("violations:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCheckQueue(t *testing.T) {
	sec := int64(time.Second)
	spec := QueueSpec{MaxDeliveries: 3, AckTimeout: 10 * time.Second, KeyOrdering: true}
	recs := map[int32][]string{0: {"a", "b", "c"}}
	d := func(m string, off int64, key string, n int32, call int64) Delivery {
		return Delivery{Member: m, Offset: off, Value: recs[0][off], Key: key, Deliveries: n, Call: call, Return: call + 1}
	}
	s := func(m string, off int64, k SettleKind, call int64) Settle {
		return Settle{Member: m, Offset: off, Kind: k, Call: call, Return: call + 1, OK: true}
	}
	goodD := []Delivery{d("m1", 0, "k", 1, 0), d("m2", 1, "", 1, 0), d("m1", 2, "k", 1, 2*sec), d("m2", 1, "", 2, 20*sec)}
	goodS := []Settle{s("m1", 0, Ack, sec), s("m2", 1, Nack, sec), s("m1", 2, Reject, 3*sec), s("m2", 1, Ack, 21*sec)}
	dead := []DeadLetter{{Partition: 0, Offset: 2, Value: "c", Reason: "rejected"}}
	cases := []struct {
		name string
		ds   []Delivery
		ss   []Settle
		dead []DeadLetter
		want string
	}{
		{name: "correct", ds: goodD, ss: goodS, dead: dead},
		{name: "lost", ds: goodD, ss: goodS, want: "2 (\"c\") was neither acked nor dead-lettered"},
		{name: "dead-lettered twice", ds: goodD, ss: goodS, dead: append(dead, dead...), want: "dead-letter topic 2 times"},
		{name: "acked and dead", ds: goodD, ss: goodS, dead: append(dead, DeadLetter{Offset: 0, Value: "a"}), want: "acked and dead-lettered"},
		{name: "two leases", ds: append(goodD, d("m3", 0, "k", 2, sec/2)), ss: goodS, dead: dead, want: "leased to m3"},
		{name: "past max deliveries", ds: append(goodD, d("m3", 1, "", 4, 40*sec)), ss: goodS, dead: dead, want: "count 4, past max deliveries 3"},
		{name: "key order", ds: []Delivery{d("m1", 0, "k", 1, 0), d("m2", 1, "", 1, 0), d("m2", 2, "k", 1, sec)},
			ss: []Settle{s("m1", 0, Ack, 5*sec), s("m2", 1, Ack, sec), s("m2", 2, Reject, 6*sec)}, dead: dead,
			want: "key \"k\": 0/2 delivered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := CheckQueue(spec, recs, tc.ds, tc.ss, tc.dead)
			got := strings.Join(res.Violations, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("violations:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}
