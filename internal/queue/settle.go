package queue

import (
	"cmp"
	"slices"
	"time"
)

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
// Call Release after the command, or Unreserve after it failed.
func (l *Leader) Reserve(member string, offs []int64, any bool, now time.Time) []Settling {
	q := l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if !l.syncLocked() {
		return nil
	}
	var out []Settling
	for _, off := range offs {
		s, ls := q.slotLocked(off), l.leaseLocked(off)
		if s == nil || ls == nil || s.state != slotOpen || ls.reserved || s.deliveries+ls.memCount == 0 {
			continue
		}
		if !any && ls.member != "" && ls.member != member && ls.until.After(now) {
			continue
		}
		ls.reserved = true
		st := Settling{Offset: off, Deliveries: s.deliveries + ls.memCount}
		if ls.leasedAt != 0 {
			st.LeasedAt = time.Unix(0, ls.leasedAt)
		}
		out = append(out, st)
	}
	return out
}

// ReserveExpired reserves the open records whose deliveries reached max
// and whose lease ended, for a dead mark.
func (l *Leader) ReserveExpired(maxDeliveries int32, now time.Time) []int64 {
	q := l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if !l.syncLocked() {
		return nil
	}
	var out []int64
	for i := range q.slots.s {
		s, ls := &q.slots.s[i], &l.leases.s[i]
		if s.state == slotOpen && !ls.reserved && s.deliveries+ls.memCount >= maxDeliveries && !ls.until.After(now) {
			if !ls.until.IsZero() {
				l.expiries++ // Release clears it: Pick will not count it again
			}
			ls.reserved = true
			out = append(out, q.floor+int64(i))
		}
	}
	return out
}

// Release ends the reservations of Reserve and ReserveExpired and drops the
// leases of those records.
func (l *Leader) Release(offs []int64) {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	if !l.syncLocked() {
		return
	}
	for _, off := range offs {
		if ls := l.leaseLocked(off); ls != nil {
			ls.reserved, ls.until, ls.member = false, time.Time{}, ""
		}
	}
}

// Unreserve ends the reservations of Reserve after an operation that
// failed, keeping the leases: the member still holds its records and may
// settle them again, so none may go to another member before its lease
// ends. (A command that failed may still have been applied; then the
// record's replicated state says so.)
func (l *Leader) Unreserve(offs []int64) {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	if !l.syncLocked() {
		return
	}
	for _, off := range offs {
		if ls := l.leaseLocked(off); ls != nil {
			ls.reserved = false
		}
	}
}

// Extend moves the lease of records leased to member to until; a lease of
// an earlier leader (member unknown) is adopted by the member. It returns
// the offsets extended.
func (l *Leader) Extend(member string, offs []int64, now, until time.Time) []int64 {
	q := l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if !l.syncLocked() {
		return nil
	}
	var out []int64
	for _, off := range offs {
		s, ls := q.slotLocked(off), l.leaseLocked(off)
		if s == nil || ls == nil || s.state != slotOpen || ls.reserved || !ls.until.After(now) || (ls.member != member && ls.member != "") {
			continue
		}
		ls.until, ls.member = until, member
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
func (l *Leader) PendingDeadLetters() []DeadLetter {
	q := l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	synced := l.syncLocked()
	var out []DeadLetter
	for i := range q.slots.s {
		s := &q.slots.s[i]
		if s.state != slotDeadPending {
			continue
		}
		d := DeadLetter{Offset: q.floor + int64(i), Seq: s.dlqSeq, Reason: s.reason, Deliveries: s.deliveries, LastError: s.lastErr}
		if synced {
			d.Deliveries += l.leases.s[i].memCount
		}
		out = append(out, d)
	}
	// Records are marked in any order (a member may reject a later record
	// first), so offset order is not sequence order; the writer needs the
	// latter.
	slices.SortFunc(out, func(a, b DeadLetter) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// Stats describe a queue group's state on a partition.
type Stats struct {
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

// Stats returns counts for describe and metrics. Leases are counted from
// l, the partition leader's scratch for q; with l nil (a follower) no
// record counts as leased.
func (q *State) Stats(now time.Time, l *Leader) Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l != nil && (l.q != q || !l.syncLocked()) {
		l = nil
	}
	st := Stats{Floor: q.floor, Next: q.next, Acked: q.acked, Dead: q.dead,
		Delivered: q.delivered, Redelivered: q.redelivered, Members: map[string]int{}}
	nowMs := now.UnixMilli()
	for i := range q.slots.s {
		s := &q.slots.s[i]
		switch {
		case s.done():
			st.AckedInWindow++
		case s.state == slotDeadPending:
			st.DeadPending++
		case l != nil && (l.leases.s[i].reserved || l.leases.s[i].until.After(now)):
			st.Leased++
			st.Members[l.leases.s[i].member]++
		default:
			st.Waiting++
			n := s.deliveries
			var deliverAt int64
			if l != nil {
				n += l.leases.s[i].memCount
				deliverAt = l.leases.s[i].deliverAt
			}
			if n > 0 && s.notBefore > nowMs || n == 0 && deliverAt > nowMs {
				st.Delayed++
			}
		}
	}
	return st
}
