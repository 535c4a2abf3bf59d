package queue

import (
	"time"
)

// The leader's side of a queue group on a partition: leases and the choice
// of records to hand out. None of it is replicated; every change of the
// replicated State is a command that the leader applies through raft and
// the State applies when it commits.
//
// A record's lifecycle on the leader: Pick reserves it (reserved, leased to
// the member); the broker applies a deliver command; Delivered turns the
// reservation into a lease (or drops it when raft failed). Settle-type
// operations (ack, nack, dead mark) reserve the record again while their
// command is in flight, so no receive picks it meanwhile.

// lease is the leader's scratch for one record.
type lease struct {
	until     time.Time // monotonic
	member    string
	reserved  bool // an operation on the record is in flight
	keyHash   uint64
	hasKey    bool
	deliverAt int64 // unix ms, from the deliver-at header
	memCount  int32 // deliveries counted only in memory (the FlagNoCount failpoint)
	leasedAt  int64 // unix ns of the last delivery's commit (Delivered); 0: unknown
}

// Leader is the scratch of a partition's leader for one queue group's
// State: leases, reservations, and what it read of records (key hash,
// deliver-at), for a window of offsets from the State's floor that may
// run past its next (records read, and picked but not yet delivered). A
// new leader builds its own (BeginLoad); it is loaded for one raft term
// and one generation of the State.
//
// A Leader's fields are guarded by its State's mutex, so that Apply (on
// the FSM goroutine) and the leader's operations see each other's
// changes atomically; Apply never touches them.
type Leader struct {
	q       *State
	term    uint64 // raft term the scratch was loaded in; 0: not loaded
	gen     uint64 // the State's generation it was loaded for
	loading bool
	base    int64 // offset of leases.s[0]: the floor when last synced
	leases  window[lease]
	// expiries counts the leases Pick and ReserveExpired found expired
	// since TakeLeaseExpiries.
	expiries uint64
}

// NewLeader returns an empty (not loaded) scratch for q.
func NewLeader(q *State) *Leader { return &Leader{q: q} }

// State returns the state the scratch is for.
func (l *Leader) State() *State { return l.q }

// syncLocked lines the window up with the State: the floor may have moved
// on (settle commands) and next may have passed the window's end (an
// earlier leader's deliveries). It reports false when the scratch is of
// another generation (not loaded since a reset): nothing in it applies.
// Caller must hold l.q.mu.
func (l *Leader) syncLocked() bool {
	q := l.q
	if l.gen != q.gen {
		return false
	}
	if d := q.floor - l.base; d > 0 {
		l.leases.trim(int(min(d, int64(len(l.leases.s)))))
		l.base = q.floor
	}
	l.leases.grow(len(q.slots.s))
	return true
}

// leaseLocked returns the scratch of off, nil outside the window. Caller
// must hold l.q.mu and have synced.
func (l *Leader) leaseLocked(off int64) *lease {
	if i := off - l.base; i >= 0 && i < int64(len(l.leases.s)) {
		return &l.leases.s[i]
	}
	return nil
}

// RecInfo is what the leader reads from the log about one record.
type RecInfo struct {
	Offset    int64
	KeyHash   uint64
	HasKey    bool
	DeliverAt int64 // unix ms; 0 when the record has no deliver-at header
}

// Loaded reports whether the scratch was loaded in raft term term for the
// State's current generation.
func (l *Leader) Loaded(term uint64) bool {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	return l.term == term && !l.loading && l.gen == l.q.gen
}

// BeginLoad starts loading the scratch for a new leadership term or
// generation: leases of an earlier leader are unknown, so every record
// delivered and neither acked nor nacked is treated as leased until
// now+ackTimeout, and reads past next are forgotten. It returns the
// offsets whose records the caller must read and give to FinishLoad, or
// ok false when a load is running.
func (l *Leader) BeginLoad(now time.Time, ackTimeout time.Duration) (from, to int64, ok bool) {
	q := l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if l.loading {
		return 0, 0, false
	}
	l.loading = true
	l.gen, l.base = q.gen, q.floor
	l.leases.cut(0)
	l.leases.grow(len(q.slots.s))
	for i := range q.slots.s {
		if s := &q.slots.s[i]; s.out && s.state == slotOpen {
			l.leases.s[i].until = now.Add(ackTimeout)
		}
	}
	return q.floor, q.next, true
}

// FinishLoad completes a load with the records read (any order; missing
// ones are treated as keyless and due). After a reset meanwhile the
// scratch stays unloaded, for the next load.
func (l *Leader) FinishLoad(term uint64, recs []RecInfo) {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	l.loading = false
	if !l.syncLocked() {
		return
	}
	for _, r := range recs {
		if ls := l.leaseLocked(r.Offset); ls != nil {
			ls.keyHash, ls.hasKey, ls.deliverAt = r.KeyHash, r.HasKey, r.DeliverAt
		}
	}
	l.term = term
}

// ReadNext returns the offset the leader reads new records from, and how
// much room the window (maxWindow records from the floor) has left.
func (l *Leader) ReadNext(maxWindow int) (next int64, room int) {
	q := l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if !l.syncLocked() {
		return q.next, maxWindow - len(q.slots.s)
	}
	return l.base + int64(len(l.leases.s)), maxWindow - len(l.leases.s)
}

// Delivered ends the reservations Pick made once the deliver command has
// committed (ok) or failed. With ok, each record is leased until
// now+ackTimeout; memCount counts the delivery in the leader's memory
// (the FlagNoCount failpoint). It returns each record's delivery count, 0
// for records gone.
func (l *Leader) Delivered(offs []int64, ok, memCount bool, now time.Time, ackTimeout time.Duration) []int32 {
	q := l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	counts := make([]int32, len(offs))
	if !l.syncLocked() {
		return counts
	}
	for j, off := range offs {
		ls := l.leaseLocked(off)
		if ls == nil {
			continue
		}
		ls.reserved = false
		s := q.slotLocked(off)
		if !ok || s == nil || s.state != slotOpen {
			ls.until, ls.member = time.Time{}, ""
			continue
		}
		if memCount {
			ls.memCount++
		}
		ls.until, ls.leasedAt = now.Add(ackTimeout), now.UnixNano()
		counts[j] = s.deliveries + ls.memCount
	}
	return counts
}

// TakeLeaseExpiries returns how many leases Pick and ReserveExpired found
// expired since the last call, and starts counting again from 0.
func (l *Leader) TakeLeaseExpiries() uint64 {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	n := l.expiries
	l.expiries = 0
	return n
}
