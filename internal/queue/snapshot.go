package queue

import "fmt"

// Snapshot is a State as a data group's snapshot holds it (JSON, in
// cluster's manifest). The encoding is part of the snapshot format:
// fields are only ever added.
type Snapshot struct {
	Group       string         `json:"group"`
	Gen         uint64         `json:"gen"`
	Floor       int64          `json:"floor"`
	Next        int64          `json:"next"`
	DLQSeq      int32          `json:"dlq_seq"`
	Acked       uint64         `json:"acked"`
	Dead        uint64         `json:"dead"`
	Delivered   uint64         `json:"delivered"`
	Redelivered uint64         `json:"redelivered"`
	Slots       []SlotSnapshot `json:"slots,omitempty"`
}

// SlotSnapshot is one record's slot in a Snapshot, for the offsets
// Floor, Floor+1, … up to Next.
type SlotSnapshot struct {
	D  int32  `json:"d,omitempty"`  // deliveries
	S  uint8  `json:"s,omitempty"`  // state: 0 open, 1 acked, 2 dead-letter pending, 3 dead
	R  uint8  `json:"r,omitempty"`  // dead-letter reason
	O  bool   `json:"o,omitempty"`  // out: delivered and not nacked since
	NB int64  `json:"nb,omitempty"` // not before (backoff), unix ms
	Q  int32  `json:"q,omitempty"`  // dead-letter sequence number
	E  string `json:"e,omitempty"`  // last error
}

// Snapshot captures the state.
func (q *State) Snapshot() Snapshot {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := Snapshot{Group: q.group, Gen: q.gen, Floor: q.floor, Next: q.next, DLQSeq: q.dlqSeq,
		Acked: q.acked, Dead: q.dead, Delivered: q.delivered, Redelivered: q.redelivered}
	if len(q.slots.s) > 0 {
		s.Slots = make([]SlotSnapshot, len(q.slots.s))
	}
	for i := range q.slots.s {
		sl := &q.slots.s[i]
		s.Slots[i] = SlotSnapshot{D: sl.deliveries, S: sl.state, R: sl.reason, O: sl.out,
			NB: sl.notBefore, Q: sl.dlqSeq, E: sl.lastErr}
	}
	return s
}

// Restore returns the state a snapshot captured. A snapshot whose slots
// do not cover [Floor, Next) exactly is corrupt.
func Restore(s Snapshot) (*State, error) {
	if s.Next < s.Floor || s.Next-s.Floor != int64(len(s.Slots)) {
		return nil, fmt.Errorf("%w: group %q has %d slots for offsets [%d, %d)", ErrCorruptSnapshot, s.Group, len(s.Slots), s.Floor, s.Next)
	}
	q := &State{group: s.Group, gen: s.Gen, floor: s.Floor, next: s.Next, dlqSeq: s.DLQSeq,
		acked: s.Acked, dead: s.Dead, delivered: s.Delivered, redelivered: s.Redelivered}
	q.slots.grow(len(s.Slots))
	for i, sl := range s.Slots {
		q.slots.s[i] = slot{deliveries: sl.D, state: sl.S, reason: sl.R, out: sl.O,
			notBefore: sl.NB, dlqSeq: sl.Q, lastErr: sl.E}
	}
	return q, nil
}

// Snapshot captures the partition's states, in group order (on the FSM
// goroutine, so exactly as of the last applied command).
func (qs *Set) Snapshot() []Snapshot {
	var out []Snapshot
	for _, q := range qs.all() {
		out = append(out, q.Snapshot())
	}
	return out
}

// Restore adds the states of snapshots to the set (a restored partition's
// set is empty).
func (qs *Set) Restore(snaps []Snapshot) error {
	for _, s := range snaps {
		q, err := Restore(s)
		if err != nil {
			return err
		}
		qs.put(q)
	}
	return nil
}
