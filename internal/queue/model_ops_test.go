package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

func TestModel(t *testing.T) {
	t.Parallel()
	events := map[string]int{}
	for seed := range uint64(16) {
		cfg := modelCfg{steps: 2500, keyOrdered: seed%2 == 1}
		t.Run(fmt.Sprintf("seed=%d/key-ordered=%v", seed, cfg.keyOrdered), func(t *testing.T) {
			seen, err := runModel(seed, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for k, n := range seen {
				events[k] += n
			}
		})
	}
	// The runs must have gone through every path they are meant to check.
	for _, k := range []string{"delivery", "redelivery", "lost answer", "ack", "nack", "dead mark max-deliveries",
		"dead mark rejected", "dead letter rewritten", "retention skip", "replay", "restart", "failover", "stale command"} {
		if events[k] == 0 {
			t.Errorf("no %s in any run: the model test does not reach it", k)
		}
	}
	t.Logf("events over all runs: %v", events)
}

// The model test must be able to fail: with deliveries counted in the
// leader's memory only (the FlagNoCount failpoint), a restart or failover
// forgets them, and the test must see it.
func TestModelCatchesCountsInMemory(t *testing.T) {
	t.Parallel()
	failed := 0
	for seed := range uint64(8) {
		if _, err := runModel(seed, modelCfg{steps: 2500, inMemory: true}); err != nil {
			if failed++; failed == 1 {
				t.Logf("with counts in memory, seed %d fails as it must: %v", seed, err)
			}
		}
	}
	if failed == 0 {
		t.Fatal("with delivery counts in the leader's memory only, every run passed: the model test cannot see lost counts")
	}
}

// runModel runs cfg.steps random operations, drains the group and checks
// the end state; it returns how often each kind of event happened and the
// first violation.
func runModel(seed uint64, cfg modelCfg) (map[string]int, error) {
	s := newSim(seed, cfg)
	for step := 0; step < cfg.steps && s.err == nil; step++ {
		s.step()
		if s.err != nil {
			return s.seen, fmt.Errorf("step %d: %w", step, s.err)
		}
	}
	s.drain()
	s.checkFinal()
	if s.err != nil {
		return s.seen, fmt.Errorf("at the end: %w", s.err)
	}
	return s.seen, nil
}

func (s *sim) step() {
	member := fmt.Sprintf("m%d", s.rng.IntN(3))
	switch n := s.rng.IntN(200); {
	case n < 30:
		s.produce()
	case n < 90:
		s.receive(member, 1+s.rng.IntN(10))
	case n < 120:
		s.settle(OpAck, member)
	case n < 140:
		s.settle(OpNack, member)
	case n < 146:
		s.settle(OpDeadMark, member) // a reject
	case n < 154:
		s.extend(member)
	case n < 178:
		s.now = s.now.Add(time.Duration(s.rng.IntN(1500)) * time.Millisecond)
	case n < 193:
		s.tick(s.rng.IntN(5) == 0)
	case n < 196:
		s.retention()
	case n < 197:
		s.reset(s.start + s.rng.Int64N(int64(len(s.recs))-s.start+1))
		s.seen["replay"]++
	case n < 198:
		s.restart()
	default:
		s.failover()
	}
}

// retention deletes records from the log's start: a few, or all but the
// newest few (past what the group has read).
func (s *sim) retention() {
	if s.rng.IntN(2) == 0 {
		s.start = min(int64(len(s.recs)), s.start+int64(s.rng.IntN(10)))
	} else {
		s.start = max(s.start, int64(len(s.recs))-s.rng.Int64N(5))
	}
}

// receive leases records to member as the broker's receivePartition does.
func (s *sim) receive(member string, maxN int) {
	if !s.load() {
		return
	}
	next, room := s.lead.ReadNext(simMaxWindow)
	if next < s.start {
		s.reset(s.start) // what retention deleted before the group read it
		s.seen["retention skip"]++
		return
	}
	var fresh []RecInfo
	for off := next; off < int64(len(s.recs)) && len(fresh) < min(room, maxN); off++ {
		fresh = append(fresh, s.recInfo(off))
	}
	pick := s.lead.Pick(PickParams{Now: s.now, Member: member, Max: maxN, MaxLeased: simMaxLeased, MaxWindow: simMaxWindow,
		KeyOrdering: s.cfg.keyOrdered, AckTimeout: s.ackTO, MaxDeliveries: s.maxDeliv, Term: s.term}, fresh)
	if len(pick.Offsets) == 0 {
		return
	}
	c := Cmd{Op: OpDeliver, Group: simGroup, Gen: pick.Gen, Offsets: pick.Offsets}
	if s.cfg.inMemory {
		c.Flags = FlagNoCount
	}
	s.checkPicked(member, pick.Offsets)
	var err error
	switch fate := s.rng.IntN(25); {
	case fate == 0:
		err = errors.New("raft failed before the command was applied")
	case fate == 2 && s.rng.IntN(3) == 0 && s.resetBetween():
		// A reset committed between the pick and the deliver command: the
		// command is of an old generation and changes nothing.
		if err = s.apply(c); !errors.Is(err, ErrReset) {
			s.failf("a deliver command of generation %d after a reset: %v, want ErrReset", c.Gen, err)
		}
		s.seen["stale command"]++
	default:
		if err = s.apply(c); err != nil {
			s.failf("deliver: %v", err)
			return
		}
		for _, off := range pick.Offsets {
			s.recs[off].deliveries++
		}
		if fate == 1 {
			err = errors.New("the command was applied, but its answer was lost")
			s.seen["lost answer"]++
		}
	}
	counts := s.lead.Delivered(pick.Offsets, err == nil, s.cfg.inMemory, s.now, s.ackTO)
	if err != nil {
		return
	}
	for i, off := range pick.Offsets {
		r := &s.recs[off]
		if counts[i] != r.deliveries {
			s.failf("delivery of %d carries count %d; it was delivered %d times", off, counts[i], r.deliveries)
		}
		if off < s.start {
			continue // retention deleted it: the broker cannot hand it out
		}
		r.seen, r.holder, r.until, r.known = true, member, s.now.Add(s.ackTO), true
		s.seen["delivery"]++
		if r.deliveries > 1 {
			s.seen["redelivery"]++
		}
		s.hold(member, off)
	}
}

// resetBetween resets the group to a random offset and reports whether
// it did (it is refused while dead letters are pending).
func (s *sim) resetBetween() bool {
	gen := s.state().Gen()
	s.reset(s.start + s.rng.Int64N(int64(len(s.recs))-s.start+1))
	return s.state().Gen() != gen
}

func (s *sim) hold(member string, off int64) {
	if s.held[member] == nil {
		s.held[member] = map[int64]bool{}
	}
	s.held[member][off] = true
}

// checkPicked checks records Pick chose against the model.
func (s *sim) checkPicked(member string, offs []int64) {
	nowMs := s.now.UnixMilli()
	for _, off := range offs {
		r := &s.recs[off]
		switch {
		case r.state != mOpen:
			s.failf("picked %d, which is done (state %d)", off, r.state)
		case r.deliveries >= s.maxDeliv:
			s.failf("picked %d after %d deliveries, max %d", off, r.deliveries, s.maxDeliv)
		case r.holder != "" && r.holder != member && r.until.After(s.now):
			s.failf("picked %d for %s while %s holds its lease", off, member, r.holder)
		case r.deliveries == 0 && r.deliverAt > nowMs && off >= s.start:
			// (Below the log start a reloaded leader cannot read the
			// time; nor can the record be handed out.)
			s.failf("picked %d before its deliver-at time", off)
		case r.deliveries > 0 && r.notBefore > nowMs:
			s.failf("picked %d before its backoff ended", off)
		}
		if !s.cfg.keyOrdered || r.key < 0 {
			continue
		}
		// Records below the log start are out of this: a leader that loads
		// its scratch cannot read their keys (nor hand them out).
		for o := s.start; o < off; o++ {
			if p := &s.recs[o]; p.key == r.key && p.state == mOpen {
				s.failf("picked %d with key %d while %d of the same key is open (%+v), start %d", off, r.key, o, *p, s.start)
				break
			}
		}
	}
}

// settle acks, nacks or rejects (op OpDeadMark) some of the records the
// member holds, as the broker's settlePartition does.
func (s *sim) settle(op Op, member string) {
	if !s.load() {
		return
	}
	offs := s.someHeld(member)
	if len(offs) == 0 {
		return
	}
	res := s.lead.Reserve(member, offs, op == OpAck, s.now)
	for _, r := range res {
		m := &s.recs[r.Offset]
		switch {
		case m.state != mOpen:
			s.failf("reserved %d for a settle, which is done", r.Offset)
		case r.Deliveries != m.deliveries:
			s.failf("reserved %d with %d deliveries; it was delivered %d times", r.Offset, r.Deliveries, m.deliveries)
		case op != OpAck && m.known && m.holder != member && m.until.After(s.now):
			s.failf("%s may settle %d, which %s holds", member, r.Offset, m.holder)
		}
	}
	done := make([]int64, len(res))
	for i, r := range res {
		done[i] = r.Offset
	}
	if len(res) == 0 || s.rng.IntN(15) == 0 { // the command failed
		s.lead.Unreserve(done)
		return
	}
	switch op {
	case OpAck:
		s.applySettle(Cmd{Op: OpAck, Offsets: done})
	case OpNack:
		s.nack(res)
	default:
		s.applySettle(Cmd{Op: OpDeadMark, Offsets: done, Reason: ReasonRejected, Text: "rejected by " + member})
	}
	s.lead.Release(done)
	for _, off := range done {
		delete(s.held[member], off)
	}
}

func (s *sim) someHeld(member string) []int64 {
	var offs []int64
	for _, off := range slices.Sorted(maps.Keys(s.held[member])) {
		if s.rng.IntN(2) == 0 {
			offs = append(offs, off)
		}
	}
	return offs
}

// nack releases records for a backoff, or dead-marks those at max
// deliveries, as the broker's QueueNack does.
func (s *sim) nack(res []Settling) {
	var retry, times, dead []int64
	for _, r := range res {
		if r.Deliveries >= s.maxDeliv {
			dead = append(dead, r.Offset)
			continue
		}
		retry = append(retry, r.Offset)
		times = append(times, s.now.Add(time.Duration(s.rng.IntN(2000))*time.Millisecond).UnixMilli())
	}
	if len(retry) > 0 {
		s.applySettle(Cmd{Op: OpNack, Offsets: retry, Times: times, Text: "failed"})
	}
	if len(dead) > 0 {
		s.applySettle(Cmd{Op: OpDeadMark, Offsets: dead, Reason: ReasonMaxDeliveries, Text: "failed"})
	}
}

// applySettle applies a settle command and updates the model.
func (s *sim) applySettle(c Cmd) {
	if err := s.apply(s.cmd(c)); err != nil {
		s.failf("%d: %v", c.Op, err)
		return
	}
	for i, off := range c.Offsets {
		r := &s.recs[off]
		if r.state == mOpen {
			r.holder, r.until = "", time.Time{}
		}
		switch {
		case c.Op == OpAck && r.state == mOpen:
			r.state = mAcked
			s.seen["ack"]++
		case c.Op == OpNack && r.state == mOpen:
			r.notBefore = c.Times[i]
			s.seen["nack"]++
		case c.Op == OpDeadMark && r.state == mOpen:
			s.deadMark(off, c.Reason)
		case c.Op == OpDead && r.state == mDeadPending:
			r.state = mDead
		}
	}
}

// deadMark checks the guarantee: a record goes to the dead-letter topic
// after exactly max deliveries, or when a member rejects it; never
// otherwise.
func (s *sim) deadMark(off int64, reason byte) {
	r := &s.recs[off]
	switch {
	case reason == ReasonMaxDeliveries && r.deliveries != s.maxDeliv:
		s.failf("%d dead-lettered for max deliveries after %d deliveries, max %d", off, r.deliveries, s.maxDeliv)
	case reason == ReasonRejected && (r.deliveries < 1 || r.deliveries > s.maxDeliv):
		s.failf("%d rejected after %d deliveries", off, r.deliveries)
	}
	r.state, r.reason = mDeadPending, reason
	r.deadMarks++
	s.seen["dead mark "+ReasonName(reason)]++
}

// extend extends some of the member's leases.
func (s *sim) extend(member string) {
	if !s.load() {
		return
	}
	until := s.now.Add(s.ackTO)
	for _, off := range s.lead.Extend(member, s.someHeld(member), s.now, until) {
		r := &s.recs[off]
		if r.state != mOpen || (r.known && r.holder != member && r.until.After(s.now)) {
			s.failf("%s extended %d (state %d, held by %s)", member, off, r.state, r.holder)
		}
		r.holder, r.until, r.known = member, until, true
	}
}

// tick dead-marks expired records and writes dead letters, as the
// broker's queue loop does; with crash it stops between the write and the
// command that marks the records dead.
func (s *sim) tick(crash bool) {
	if !s.load() {
		return
	}
	if exp := s.lead.ReserveExpired(s.maxDeliv, s.now); len(exp) > 0 {
		for _, off := range exp {
			if r := &s.recs[off]; r.holder != "" && r.until.After(s.now) {
				s.failf("%d expired while %s holds its lease", off, r.holder)
			}
		}
		s.applySettle(Cmd{Op: OpDeadMark, Offsets: exp, Reason: ReasonMaxDeliveries})
		s.lead.Release(exp)
	}
	pend := s.lead.PendingDeadLetters()
	if len(pend) == 0 {
		return
	}
	n := 1
	for n < len(pend) && pend[n].Seq == pend[n-1].Seq+1 {
		n++
	}
	var dead []int64
	for _, d := range pend[:n] {
		r := &s.recs[d.Offset]
		switch seq := int(d.Seq); {
		case r.state != mDeadPending || d.Reason != r.reason:
			s.failf("pending dead letter %+v; the model has state %d reason %d", d, r.state, r.reason)
		case seq < len(s.dlq) && s.dlq[seq] != d.Offset:
			s.failf("dead letter %d rewritten with sequence %d of %d", d.Offset, seq, s.dlq[seq])
		case seq < len(s.dlq):
			s.seen["dead letter rewritten"]++ // the partition drops the duplicate
		case seq > len(s.dlq):
			s.failf("dead letter %d has sequence %d; the partition expects %d", d.Offset, seq, len(s.dlq))
		case seq == len(s.dlq):
			s.dlq = append(s.dlq, d.Offset)
		}
		dead = append(dead, d.Offset)
	}
	if !crash {
		s.applySettle(Cmd{Op: OpDead, Offsets: dead})
	}
}

// reset moves the group to off with a new generation (as a replay, or the
// broker skipping what retention deleted); records below become gone,
// records from off on are new again.
func (s *sim) reset(off int64) {
	err := s.apply(Cmd{Op: OpReset, Group: simGroup, Gen: s.state().Gen() + 1, Arg: off})
	if errors.Is(err, ErrBusy) {
		return // dead letters are being written
	}
	if err != nil {
		s.failf("reset: %v", err)
		return
	}
	for i := range s.recs {
		r := &s.recs[i]
		switch {
		case int64(i) < off && r.state == mOpen:
			r.state = mGone
		case int64(i) >= off:
			*r = modelRec{key: r.key, deliverAt: r.deliverAt, seen: r.seen, deadMarks: r.deadMarks}
		}
	}
	clear(s.held)
}

// restart is a restart of the leader from a snapshot: the state goes
// through its encoding and comes back the same; the leases are gone.
func (s *sim) restart() {
	b, err := json.Marshal(s.set.Snapshot())
	if err != nil {
		s.failf("snapshot: %v", err)
		return
	}
	var snaps []Snapshot
	restored := &Set{}
	if err := json.Unmarshal(b, &snaps); err != nil {
		s.failf("snapshot: %v", err)
		return
	}
	if err := restored.Restore(snaps); err != nil {
		s.failf("restore: %v", err)
		return
	}
	if got := snapJSON(restored.Snapshot()); got != string(b) {
		s.failf("restored state differs:\n%s\n%s", got, b)
	}
	s.set = restored
	s.newLeader()
	s.seen["restart"]++
}

// failover makes the follower the leader.
func (s *sim) failover() {
	s.set, s.follower = s.follower, s.set
	s.newLeader()
	s.seen["failover"]++
}

// newLeader starts a new leadership term on s.set: the leader's scratch
// is new, and it knows no holder of a lease.
func (s *sim) newLeader() {
	s.lead = NewLeader(s.state())
	s.term++
	for i := range s.recs {
		s.recs[i].known = false
	}
}

// drain lets time pass and acks everything until the group has settled
// every record.
func (s *sim) drain() {
	for range 100 {
		s.now = s.now.Add(s.ackTO + 3*time.Second) // leases, backoffs and delays end
		for range 1000 {
			if s.err != nil {
				return
			}
			if floor, _ := s.state().Range(); floor == int64(len(s.recs)) && len(s.lead.PendingDeadLetters()) == 0 {
				return
			}
			s.receive("drain", 100)
			held := slices.Sorted(maps.Keys(s.held["drain"]))
			clear(s.held["drain"])
			if len(held) == 0 {
				s.tick(false)
				break // nothing to hand out now: let time pass
			}
			s.ackAll(held)
			s.tick(false)
		}
	}
	floor, next := s.state().Range()
	s.failf("not drained: floor %d, next %d, %d records", floor, next, len(s.recs))
}

// ackAll acks offs (from any member).
func (s *sim) ackAll(offs []int64) {
	if !s.load() {
		return
	}
	res := s.lead.Reserve("drain", offs, true, s.now)
	done := make([]int64, len(res))
	for i, r := range res {
		done[i] = r.Offset
	}
	if len(done) > 0 {
		s.applySettle(Cmd{Op: OpAck, Offsets: done})
	}
	s.lead.Release(done)
}

// checkFinal checks that every record was settled: acked after it was
// delivered, or dead-lettered (once per dead mark), unless a reset skipped
// it. (A record may be dead-lettered without a member ever seeing it: a
// delivery whose answer was lost still counts.)
func (s *sim) checkFinal() {
	written := map[int64]int{}
	for _, off := range s.dlq {
		written[off]++
	}
	for i := range s.recs {
		off, r := int64(i), &s.recs[i]
		switch {
		case r.state == mOpen || r.state == mDeadPending:
			s.failf("%d is still open (state %d)", off, r.state)
		case r.state == mAcked && !r.seen:
			s.failf("%d acked without ever being delivered", off)
		case written[off] != r.deadMarks:
			s.failf("%d was dead-marked %d times and written to the dead-letter partition %d times", off, r.deadMarks, written[off])
		}
	}
}
