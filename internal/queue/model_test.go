package queue

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// The model test drives a State and its Leader as the broker does (pick,
// deliver, ack, nack, reject, extend, lease expiry, dead letters with
// crashes between their write and the dead command, retention, resets,
// raft commands that fail or whose answer is lost, restarts from a
// snapshot, failovers to a follower replica) with random operations on a
// fake clock, and checks every answer against a plain model of each record
// (modelRec) and the invariants of doc.go:
//
//   - every command goes through the codec, and a follower that applies
//     the same commands holds the same state after each one;
//   - a snapshot restores to the same state;
//   - each delivery carries the count of deliveries so far; no record is
//     picked when done, at max deliveries, before its backoff or delay, for
//     a second member while the first holds its lease, or (key ordering)
//     while an earlier record of its key is open;
//   - a record is dead-marked for max deliveries after exactly max
//     deliveries, for a reject only when a member rejects it, and never
//     otherwise; dead letters are written in sequence order, once each;
//   - at the end, after the group drained, every record is acked (after a
//     member saw it) or dead-lettered, unless a reset skipped it.

// Model record states.
const (
	mOpen = iota
	mAcked
	mDeadPending
	mDead
	mGone // skipped by a reset (retention or replay) before it was done
)

type modelRec struct {
	key        int   // -1: no key
	deliverAt  int64 // unix ms, 0: none
	deliveries int32 // deliver commands applied in this generation
	state      int
	reason     byte
	seen       bool // handed to a member at least once
	holder     string
	until      time.Time // the holder's lease as the member was told
	// known: the leader knows the holder (false after a restart or
	// failover, when any member may settle or extend the record).
	known     bool
	notBefore int64 // unix ms, after a nack
	deadMarks int   // times dead-marked, over all generations
}

type modelCfg struct {
	steps      int
	inMemory   bool // the FlagNoCount failpoint
	keyOrdered bool
}

type sim struct {
	rng      *rand.Rand
	cfg      modelCfg
	set      *Set // the leader's replica
	follower *Set
	lead     *Leader
	term     uint64
	now      time.Time
	start    int64 // log start offset (retention)
	recs     []modelRec
	held     map[string]map[int64]bool // what each member holds
	dlq      []int64                   // dead-letter partition: offset by sequence number
	maxDeliv int32
	ackTO    time.Duration
	err      error
	seen     map[string]int // how often each kind of event happened
}

const (
	simGroup     = "g"
	simMaxWindow = 40
	simMaxLeased = 25
)

func newSim(seed uint64, cfg modelCfg) *sim {
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), cfg: cfg, set: &Set{}, follower: &Set{},
		term: 1, now: time.UnixMilli(1_700_000_000_000), held: map[string]map[int64]bool{},
		maxDeliv: int32(1 + seed%4), ackTO: time.Second, seen: map[string]int{}}
	s.apply(Cmd{Op: OpInit, Group: simGroup, Gen: 1})
	s.lead = NewLeader(s.state())
	return s
}

func (s *sim) state() *State { return s.set.Get(simGroup) }

func (s *sim) failf(format string, a ...any) {
	if s.err == nil {
		s.err = fmt.Errorf(format, a...)
	}
}

// apply applies c through the codec on both replicas, which must answer
// alike and end up with the same state.
func (s *sim) apply(c Cmd) error {
	dec, err := DecodeCmd(c.Append(nil))
	if err != nil {
		s.failf("command %+v does not decode: %v", c, err)
		return err
	}
	dec2 := dec
	err = s.set.Apply(&dec)
	if err2 := s.follower.Apply(&dec2); (err == nil) != (err2 == nil) {
		s.failf("replicas answer %v and %v to %+v", err, err2, c)
	}
	q, f := s.state().Snapshot(), s.follower.Get(simGroup).Snapshot()
	if a, b := snapJSON(q), snapJSON(f); a != b {
		s.failf("replicas differ after %+v:\n%s\n%s", c, a, b)
	}
	if len(q.Slots) != int(q.Next-q.Floor) {
		s.failf("%d slots for [%d, %d)", len(q.Slots), q.Floor, q.Next)
	}
	return err
}

func snapJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// produce appends records, some with a key, some delayed.
func (s *sim) produce() {
	for range 1 + s.rng.IntN(8) {
		r := modelRec{key: -1}
		if s.rng.IntN(3) > 0 {
			r.key = s.rng.IntN(5)
		}
		if s.rng.IntN(10) == 0 {
			r.deliverAt = s.now.Add(time.Duration(s.rng.IntN(3000)) * time.Millisecond).UnixMilli()
		}
		s.recs = append(s.recs, r)
	}
}

func (s *sim) recInfo(off int64) RecInfo {
	r := &s.recs[off]
	return RecInfo{Offset: off, HasKey: r.key >= 0, KeyHash: uint64(r.key), DeliverAt: r.deliverAt}
}

// load loads the leader's scratch as the broker's cursor does.
func (s *sim) load() bool {
	if s.lead.Loaded(s.term) {
		return true
	}
	from, to, ok := s.lead.BeginLoad(s.now, s.ackTO)
	if !ok {
		s.failf("a load is running with no other caller")
		return false
	}
	var recs []RecInfo
	for off := max(from, s.start); off < to; off++ {
		recs = append(recs, s.recInfo(off))
	}
	s.lead.FinishLoad(s.term, recs)
	return s.lead.Loaded(s.term)
}

// cmd fills in the group and the generation, as the broker's
// queueCursor.apply does.
func (s *sim) cmd(c Cmd) Cmd {
	c.Group, c.Gen = simGroup, s.state().Gen()
	return c
}
