package history

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// Delivery is one record a queue receive handed to a member.
type Delivery struct {
	Member     string
	Partition  int32
	Offset     int64
	Value      string
	Key        string // "" for a record without a key
	Deliveries int32  // the delivery count the broker reported
	Call       int64  // when the receive began
	Return     int64  // when it returned
}

// SettleKind is what a member did with a delivered record.
type SettleKind uint8

// Settle kinds.
const (
	Ack SettleKind = iota
	Nack
	Reject
)

// Settle is one ack, nack or reject of one record by a member.
type Settle struct {
	Member    string
	Partition int32
	Offset    int64
	Kind      SettleKind
	Call      int64
	Return    int64
	// OK is true when the broker confirmed it settled the record. Any
	// other settle may still have taken effect: a call that failed may
	// have been applied, and an answer that settled nothing may follow a
	// retry (inside the client) of an attempt that was applied. Err is the
	// error the call failed with, for messages.
	OK  bool
	Err string
}

// DeadLetter is a record found in a dead-letter topic at the end.
type DeadLetter struct {
	Partition  int32 // the source partition
	Offset     int64 // the source offset
	Value      string
	Deliveries int32
	Reason     string
}

// Delivered records a delivery.
func (r *Recorder) Delivered(d Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, d)
}

// Settled records an ack, nack or reject.
func (r *Recorder) Settled(s Settle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settles = append(r.settles, s)
}

// Deliveries returns the deliveries recorded so far.
func (r *Recorder) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// Settles returns the settles recorded so far.
func (r *Recorder) Settles() []Settle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.settles)
}

// QueueSpec is what CheckQueue needs to know of the group.
type QueueSpec struct {
	MaxDeliveries int32
	AckTimeout    time.Duration
	KeyOrdering   bool
}

// QueueCounts summarises a queue history.
type QueueCounts struct {
	Records, Delivered, Redelivered, Acked, DeadLettered int
	Lost, DuplicateDeadLetters, AckedAndDead             int
}

func (c QueueCounts) String() string {
	return fmt.Sprintf("records %d, deliveries %d (%d redeliveries), acked %d, dead-lettered %d; lost %d, dead-lettered twice %d, acked and dead-lettered %d",
		c.Records, c.Delivered, c.Redelivered, c.Acked, c.DeadLettered, c.Lost, c.DuplicateDeadLetters, c.AckedAndDead)
}

// QueueResult is the outcome of CheckQueue.
type QueueResult struct {
	Counts     QueueCounts
	Violations []string
}

// OK reports whether the check found no violation.
func (r *QueueResult) OK() bool { return len(r.Violations) == 0 }

func (r *QueueResult) violate(format string, args ...any) {
	r.Violations = appendViolation(r.Violations, format, args...)
}

type recordKey struct {
	partition int32
	offset    int64
}

// CheckQueue checks one queue group's history. records are the source
// topic's records (per partition, in offset order, from offset 0) with
// keys[i] their keys (nil when no record has one), dead the group's
// dead-letter topic read at the end, after every record was settled.
func CheckQueue(spec QueueSpec, records map[int32][]string, deliveries []Delivery, settles []Settle, dead []DeadLetter) QueueResult {
	var res QueueResult
	// acked: an ack the broker confirmed; maybeAcked: any ack attempt
	// (see Settle.OK).
	acked, maybeAcked := map[recordKey]bool{}, map[recordKey]bool{}
	for _, s := range settles {
		if s.Kind == Ack {
			maybeAcked[recordKey{s.Partition, s.Offset}] = true
			acked[recordKey{s.Partition, s.Offset}] = acked[recordKey{s.Partition, s.Offset}] || s.OK
		}
	}
	deadAt := map[recordKey]int{}
	for _, d := range dead {
		k := recordKey{d.Partition, d.Offset}
		deadAt[k]++
		if vals := records[d.Partition]; d.Offset >= int64(len(vals)) || vals[d.Offset] != d.Value {
			res.violate("dead letter of %d/%d holds %q, not the source record", d.Partition, d.Offset, d.Value)
		}
	}
	for p, vals := range records {
		for off := range vals {
			k := recordKey{p, int64(off)}
			res.Counts.Records++
			a, n := acked[k], deadAt[k]
			if a {
				res.Counts.Acked++
			}
			if n > 0 {
				res.Counts.DeadLettered++
			}
			switch {
			case !maybeAcked[k] && n == 0:
				res.Counts.Lost++
				res.violate("record %d/%d (%q) was neither acked nor dead-lettered", p, off, vals[off])
			case a && n > 0:
				res.Counts.AckedAndDead++
				res.violate("record %d/%d was acked and dead-lettered", p, off)
			}
			if n > 1 {
				res.Counts.DuplicateDeadLetters++
				res.violate("record %d/%d is in the dead-letter topic %d times", p, off, n)
			}
		}
	}
	checkDeliveries(&res, spec, records, deliveries, settles)
	return res
}

// checkDeliveries checks delivery counts, single leases and key order.
func checkDeliveries(res *QueueResult, spec QueueSpec, records map[int32][]string, deliveries []Delivery, settles []Settle) {
	byRec := map[recordKey][]Delivery{}
	for _, d := range deliveries {
		res.Counts.Delivered++
		k := recordKey{d.Partition, d.Offset}
		if vals := records[d.Partition]; d.Offset >= int64(len(vals)) || vals[d.Offset] != d.Value {
			res.violate("member %s received %q as %d/%d, which the log does not hold there", d.Member, d.Value, d.Partition, d.Offset)
		}
		if spec.MaxDeliveries > 0 && d.Deliveries > spec.MaxDeliveries {
			res.violate("record %d/%d delivered with count %d, past max deliveries %d", d.Partition, d.Offset, d.Deliveries, spec.MaxDeliveries)
		}
		byRec[k] = append(byRec[k], d)
	}
	settledBy := map[recordKey][]Settle{}
	for _, s := range settles {
		k := recordKey{s.Partition, s.Offset}
		settledBy[k] = append(settledBy[k], s)
	}
	ack := int64(spec.AckTimeout)
	for k, ds := range byRec {
		sort.Slice(ds, func(i, j int) bool { return ds[i].Return < ds[j].Return })
		res.Counts.Redelivered += len(ds) - 1
		for i := 1; i < len(ds); i++ {
			prev, d := ds[i-1], ds[i]
			// prev's lease began after prev.Call and lasts AckTimeout unless
			// prev's member settled it first; d was leased before d.Return.
			if d.Return < prev.Call+ack && !settledBefore(settledBy[k], prev, d.Return) {
				res.violate("record %d/%d leased to %s at %v (delivery %d) while %s's lease from %v (delivery %d) was live; settles: %s",
					k.partition, k.offset, d.Member, time.Duration(d.Return), d.Deliveries, prev.Member, time.Duration(prev.Call),
					prev.Deliveries, describeSettles(settledBy[k]))
			}
		}
	}
	if spec.KeyOrdering {
		checkKeyOrder(res, byRec, settledBy, ack)
	}
}

// settledBefore reports whether a settle of d's member for d's record may
// have taken effect before t (it began before t).
func settledBefore(ss []Settle, d Delivery, t int64) bool {
	for _, s := range ss {
		if s.Member == d.Member && s.Call >= d.Call && s.Call <= t {
			return true
		}
	}
	return false
}

// checkKeyOrder checks that a record is never delivered while an earlier
// record of its key may be leased, and that the first deliveries of a
// key's records come in offset order.
func checkKeyOrder(res *QueueResult, byRec map[recordKey][]Delivery, settledBy map[recordKey][]Settle, ack int64) {
	type keyed struct {
		partition int32
		key       string
	}
	byKey := map[keyed][]recordKey{}
	for k, ds := range byRec {
		if ds[0].Key != "" {
			kk := keyed{k.partition, ds[0].Key}
			byKey[kk] = append(byKey[kk], k)
		}
	}
	for kk, recs := range byKey {
		sort.Slice(recs, func(i, j int) bool { return recs[i].offset < recs[j].offset })
		for i := 1; i < len(recs); i++ {
			earlier, later := byRec[recs[i-1]], byRec[recs[i]]
			first := later[0]
			if first.Return < earlier[0].Call {
				res.violate("key %q: %d/%d delivered before the earlier %d/%d", kk.key, kk.partition, recs[i].offset, kk.partition, recs[i-1].offset)
			}
			for _, e := range earlier {
				if first.Return > e.Call && first.Return < e.Call+ack && !settledBefore(settledBy[recs[i-1]], e, first.Return) &&
					!redeliveredBefore(earlier, e, first.Return) && e.Return < first.Return {
					res.violate("key %q: %d/%d delivered at %v (delivery %d, to %s) while %d/%d (delivered at %v, delivery %d, to %s) was in flight; its settles: %s",
						kk.key, kk.partition, recs[i].offset, time.Duration(first.Return), first.Deliveries, first.Member,
						kk.partition, recs[i-1].offset, time.Duration(e.Return), e.Deliveries, e.Member, describeSettles(settledBy[recs[i-1]]))
					break
				}
			}
		}
	}
}

// redeliveredBefore reports whether the record of e was delivered again
// after e and before t (so e's lease had ended).
func redeliveredBefore(ds []Delivery, e Delivery, t int64) bool {
	for _, d := range ds {
		if d.Call > e.Return && d.Return < t {
			return true
		}
	}
	return false
}

func describeSettles(ss []Settle) string {
	if len(ss) == 0 {
		return "none"
	}
	out := ""
	for _, s := range ss {
		out += fmt.Sprintf("[%s kind %d at %v..%v ok %v %s] ", s.Member, s.Kind, time.Duration(s.Call), time.Duration(s.Return), s.OK, s.Err)
	}
	return out
}
