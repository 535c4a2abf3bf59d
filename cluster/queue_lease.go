package cluster

import (
	"cmp"
	"slices"
	"time"
)

// The leader's side of a queue state: leases and the choice of records to
// hand out. These methods touch only the scratch fields of the slots (and
// read the replicated ones); every change of replicated state is a command.
//
// A slot's lifecycle on the leader: Pick reserves it (reserved, leased to
// the member); the broker applies a deliver command; Delivered turns the
// reservation into a lease (or drops it when raft failed). Settle-type
// operations (ack, nack, dead mark) reserve the slot again while their
// command is in flight, so no receive picks it meanwhile.

// RecInfo is what the leader reads from the log about one record.
type RecInfo struct {
	Offset    int64
	KeyHash   uint64
	HasKey    bool
	DeliverAt int64 // unix ms; 0 when the record has no deliver-at header
}

// Gen returns the state's generation (it changes on reset).
func (q *QueueState) Gen() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.gen
}

// Loaded reports whether the scratch was loaded in raft term term.
func (q *QueueState) Loaded(term uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.term == term && !q.loading
}

// BeginLoad starts loading the scratch for a new leadership term: leases
// of an earlier leader are unknown, so every record delivered and neither
// acked nor nacked is treated as leased until now+ackTimeout, and reads
// past next are forgotten. It returns the offsets whose records the caller
// must read and give to FinishLoad, or ok false when a load is running.
func (q *QueueState) BeginLoad(now time.Time, ackTimeout time.Duration) (from, to int64, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.loading {
		return 0, 0, false
	}
	q.loading = true
	clear(q.slots[q.next-q.floor:]) // reads past next are forgotten, their scratch too
	q.slots = q.slots[:q.next-q.floor]
	for i := range q.slots {
		s := &q.slots[i]
		s.leaseUntil, s.member, s.reserved, s.memCount, s.leasedAt = time.Time{}, "", false, 0, 0
		s.keyHash, s.hasKey, s.deliverAt = 0, false, 0
		if s.out && s.state == slotOpen {
			s.leaseUntil = now.Add(ackTimeout)
		}
	}
	return q.floor, q.next, true
}

// FinishLoad completes a load with the records read (any order, missing
// ones are treated as keyless and due).
func (q *QueueState) FinishLoad(term uint64, recs []RecInfo) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range recs {
		if i := r.Offset - q.floor; i >= 0 && i < int64(len(q.slots)) {
			s := &q.slots[i]
			s.keyHash, s.hasKey, s.deliverAt = r.KeyHash, r.HasKey, r.DeliverAt
		}
	}
	q.loading = false
	q.term = term
}

// ReadNext returns the offset the leader reads new records from, and
// whether the window (room) still has space for more.
func (q *QueueState) ReadNext(maxWindow int) (next int64, room int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.floor + int64(len(q.slots)), maxWindow - len(q.slots)
}

// ReadAhead returns the value the leader's caller keeps with the state,
// nil when none: the broker keeps the records it read past the slots, so
// that the receives that follow need not read and decode them again. The
// state never reads it; it goes with the state.
func (q *QueueState) ReadAhead() any {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.readAhead
}

// SetReadAhead replaces the value ReadAhead returns.
func (q *QueueState) SetReadAhead(v any) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.readAhead = v
}

// PickParams are a receive's parameters.
type PickParams struct {
	Now           time.Time
	Member        string
	Max           int
	MaxLeased     int
	MaxWindow     int
	KeyOrdering   bool
	AckTimeout    time.Duration
	MaxDeliveries int32
	Term          uint64
}

// PickResult is what Pick reserved.
type PickResult struct {
	Gen     uint64
	Offsets []int64
	// NextDue is the earliest future time at which a record may become
	// available (a backoff, a delay or a lease ending); zero when none.
	NextDue time.Time
	// Expired is true when a record reached max deliveries with its lease
	// expired: it is to be dead-lettered.
	Expired bool
}

// Pick appends the fresh records that continue the slots, then reserves up
// to Max records for Member: records whose lease expired or whose backoff
// or delay elapsed, in offset order, with key ordering when asked. It
// returns nothing when the scratch is not loaded for Term.
func (q *QueueState) Pick(pp PickParams, fresh []RecInfo) PickResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	res := PickResult{Gen: q.gen}
	if q.term != pp.Term || q.loading {
		return res
	}
	for _, r := range fresh {
		if r.Offset != q.floor+int64(len(q.slots)) || len(q.slots) >= pp.MaxWindow {
			break
		}
		q.growSlotsLocked(len(q.slots) + 1)
		s := &q.slots[len(q.slots)-1]
		s.keyHash, s.hasKey, s.deliverAt = r.KeyHash, r.HasKey, r.DeliverAt
	}
	nowMs := pp.Now.UnixMilli()
	var seen map[uint64]bool
	if pp.KeyOrdering {
		seen = map[uint64]bool{}
	}
	due := func(t time.Time) {
		if res.NextDue.IsZero() || t.Before(res.NextDue) {
			res.NextDue = t
		}
	}
	leased := 0
	var cands []int
	for i := range q.slots {
		s := &q.slots[i]
		if s.state != slotOpen {
			continue
		}
		blocked := false
		if seen != nil && s.hasKey {
			blocked = seen[s.keyHash]
			seen[s.keyHash] = true
		}
		if s.reserved || s.leaseUntil.After(pp.Now) {
			leased++
			if !s.reserved {
				due(s.leaseUntil)
			}
			continue
		}
		if !s.leaseUntil.IsZero() {
			s.leaseUntil, s.member = time.Time{}, ""
			q.expiries++
		}
		count := s.deliveries + s.memCount
		switch {
		case count >= pp.MaxDeliveries:
			res.Expired = true
			continue
		case blocked:
			continue
		case count > 0 && s.notBefore > nowMs:
			due(time.UnixMilli(s.notBefore))
			continue
		case count == 0 && s.deliverAt > nowMs:
			due(time.UnixMilli(s.deliverAt))
			continue
		}
		if len(cands) < pp.Max {
			cands = append(cands, i)
		}
	}
	if room := pp.MaxLeased - leased; len(cands) > room {
		cands = cands[:max(room, 0)]
	}
	for _, i := range cands {
		s := &q.slots[i]
		s.reserved, s.member, s.leaseUntil = true, pp.Member, pp.Now.Add(pp.AckTimeout)
		res.Offsets = append(res.Offsets, q.floor+int64(i))
	}
	return res
}

// Delivered ends the reservations Pick made once the deliver command has
// committed (ok) or failed. With ok, each record is leased until
// now+ackTimeout; memCount counts the delivery in memory only (unsafe test
// mode). It returns each record's delivery count, 0 for records gone.
func (q *QueueState) Delivered(offs []int64, ok, memCount bool, now time.Time, ackTimeout time.Duration) []int32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	counts := make([]int32, len(offs))
	for j, off := range offs {
		s := q.scratchLocked(off)
		if s == nil {
			continue
		}
		s.reserved = false
		if !ok || s.state != slotOpen {
			s.leaseUntil, s.member = time.Time{}, ""
			continue
		}
		if memCount {
			s.memCount++
		}
		s.leaseUntil, s.leasedAt = now.Add(ackTimeout), now.UnixNano()
		counts[j] = s.deliveries + s.memCount
	}
	return counts
}

// scratchLocked returns the slot of off if it exists. Caller must hold q.mu.
func (q *QueueState) scratchLocked(off int64) *qslot {
	if i := off - q.floor; i >= 0 && i < int64(len(q.slots)) {
		return &q.slots[i]
	}
	return nil
}

// Settling is a record that an ack, nack or reject is about to settle.
type Settling struct {
	Offset     int64
	Deliveries int32
	// LeasedAt is when this leader delivered it last (zero when another
	// leader did).
	LeasedAt time.Time
}

// Reserve marks delivered, open records for a settling operation and
// returns them. Records leased to another member (a live lease) are left
// alone unless any is true (acks are taken from anyone: the work is done).
// Call Release after the command.
func (q *QueueState) Reserve(member string, offs []int64, any bool, now time.Time) []Settling {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Settling
	for _, off := range offs {
		s := q.scratchLocked(off)
		if s == nil || off >= q.next || s.state != slotOpen || s.reserved || s.deliveries+s.memCount == 0 {
			continue
		}
		if !any && s.member != "" && s.member != member && s.leaseUntil.After(now) {
			continue
		}
		s.reserved = true
		st := Settling{Offset: off, Deliveries: s.deliveries + s.memCount}
		if s.leasedAt != 0 {
			st.LeasedAt = time.Unix(0, s.leasedAt)
		}
		out = append(out, st)
	}
	return out
}

// ReserveExpired reserves the open records whose deliveries reached max
// and whose lease ended, for a dead mark.
func (q *QueueState) ReserveExpired(maxDeliveries int32, now time.Time) []int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []int64
	for i := range q.slots {
		s := &q.slots[i]
		if s.state == slotOpen && !s.reserved && s.deliveries+s.memCount >= maxDeliveries && !s.leaseUntil.After(now) &&
			q.floor+int64(i) < q.next {
			if !s.leaseUntil.IsZero() {
				q.expiries++ // Release clears it: Pick will not count it again
			}
			s.reserved = true
			out = append(out, q.floor+int64(i))
		}
	}
	return out
}

// Release ends the reservations of Reserve and ReserveExpired and drops the
// leases of those records.
func (q *QueueState) Release(offs []int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, off := range offs {
		if s := q.scratchLocked(off); s != nil {
			s.reserved, s.leaseUntil, s.member = false, time.Time{}, ""
		}
	}
}

// Unreserve ends the reservations of Reserve after an operation that
// failed, keeping the leases: the member still holds its records and may
// settle them again, so none may go to another member before its lease
// ends. (A command that failed may still have been applied; then the
// record's replicated state says so.)
func (q *QueueState) Unreserve(offs []int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, off := range offs {
		if s := q.scratchLocked(off); s != nil {
			s.reserved = false
		}
	}
}

// Extend moves the lease of records leased to member to until; a lease of
// an earlier leader (member unknown) is adopted by the member. It returns
// the offsets extended.
func (q *QueueState) Extend(member string, offs []int64, now, until time.Time) []int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []int64
	for _, off := range offs {
		s := q.scratchLocked(off)
		if s == nil || s.state != slotOpen || s.reserved || !s.leaseUntil.After(now) || (s.member != member && s.member != "") {
			continue
		}
		s.leaseUntil, s.member = until, member
		out = append(out, off)
	}
	return out
}

// DeadLetter is a record marked for the dead-letter topic.
type DeadLetter struct {
	Offset     int64
	Seq        int32
	Reason     byte
	Deliveries int32
	LastError  string
}

// PendingDeadLetters returns the records marked for the dead-letter topic
// and not yet written, in sequence order.
func (q *QueueState) PendingDeadLetters() []DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []DeadLetter
	for i := int64(0); i < q.next-q.floor; i++ {
		s := &q.slots[i]
		if s.state == slotDeadPending {
			out = append(out, DeadLetter{Offset: q.floor + i, Seq: s.dlqSeq, Reason: s.reason,
				Deliveries: s.deliveries + s.memCount, LastError: s.lastErr})
		}
	}
	// Records are marked in any order (a member may reject a later record
	// first), so offset order is not sequence order; the writer needs the
	// latter.
	slices.SortFunc(out, func(a, b DeadLetter) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// TakeLeaseExpiries returns how many leases Pick and ReserveExpired
// found expired since the last call, and starts counting again from 0.
func (q *QueueState) TakeLeaseExpiries() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.expiries
	q.expiries = 0
	return n
}

// QueueStats describe a queue state.
type QueueStats struct {
	Floor, Next                  int64
	Leased, Waiting, DeadPending int64
	// Delayed counts the waiting records not yet due: a first delivery
	// held by a deliver-at header (known on the leader only), or a retry
	// in its backoff.
	Delayed                             int64
	AckedInWindow                       int64
	Acked, Dead, Delivered, Redelivered uint64
	// Members counts live leases per member ("" for leases of an earlier
	// leader).
	Members map[string]int
}

// Stats returns counts for describe and metrics. Lease counts are only
// meaningful on the leader.
func (q *QueueState) Stats(now time.Time) QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := QueueStats{Floor: q.floor, Next: q.next, Acked: q.acked, Dead: q.dead,
		Delivered: q.delivered, Redelivered: q.redelivered, Members: map[string]int{}}
	nowMs := now.UnixMilli()
	for i := int64(0); i < q.next-q.floor; i++ {
		s := &q.slots[i]
		switch {
		case s.done():
			st.AckedInWindow++
		case s.state == slotDeadPending:
			st.DeadPending++
		case s.reserved || s.leaseUntil.After(now):
			st.Leased++
			st.Members[s.member]++
		default:
			st.Waiting++
			if n := s.deliveries + s.memCount; n > 0 && s.notBefore > nowMs || n == 0 && s.deliverAt > nowMs {
				st.Delayed++
			}
		}
	}
	return st
}
