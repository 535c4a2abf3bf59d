package queue

import (
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Slot states (part of the snapshot encoding).
const (
	slotOpen        uint8 = 0
	slotAcked       uint8 = 1
	slotDeadPending uint8 = 2 // marked for the dead-letter topic, not yet written
	slotDead        uint8 = 3
)

// slot is the replicated state of one record in [floor, next).
type slot struct {
	deliveries int32
	state      uint8
	reason     uint8
	out        bool  // delivered and not nacked since: a lease may be live
	notBefore  int64 // unix ms
	dlqSeq     int32
	lastErr    string
}

func (s *slot) done() bool { return s.state == slotAcked || s.state == slotDead }

// State is one queue group's replicated state on one partition: exactly
// what every replica computes from the commands it applied (see doc.go).
// The leader's scratch is a Leader, which shares the State's mutex.
type State struct {
	mu     sync.Mutex // guards everything below, and every field of the State's Leaders
	group  string
	gen    uint64
	floor  int64
	next   int64
	slots  window[slot] // slots.s[i] is offset floor+i; len(slots.s) == next-floor
	dlqSeq int32

	acked, dead, delivered, redelivered uint64
}

func newState(group string, gen uint64, at int64) *State {
	return &State{group: group, gen: gen, floor: at, next: at}
}

// Group returns the group's name.
func (q *State) Group() string { return q.group }

// Gen returns the state's generation (it changes on reset).
func (q *State) Gen() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.gen
}

// Range returns the floor (every offset below is done) and next (one past
// the highest offset delivered).
func (q *State) Range() (floor, next int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.floor, q.next
}

// slotLocked returns the replicated slot of off, or nil outside [floor,
// next). Caller must hold q.mu.
func (q *State) slotLocked(off int64) *slot {
	if i := off - q.floor; i >= 0 && i < int64(len(q.slots.s)) {
		return &q.slots.s[i]
	}
	return nil
}

// Set is the queue groups' states on one partition. The data FSM applies
// every command to it, on every replica.
type Set struct {
	mu sync.Mutex
	m  map[string]*State
}

// Get returns a group's state, or nil.
func (qs *Set) Get(group string) *State {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return qs.m[group]
}

func (qs *Set) put(q *State) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.m == nil {
		qs.m = map[string]*State{}
	}
	qs.m[q.group] = q
}

// all returns the states in group order.
func (qs *Set) all() []*State {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	out := make([]*State, 0, len(qs.m))
	for _, k := range slices.Sorted(maps.Keys(qs.m)) {
		out = append(out, qs.m[k])
	}
	return out
}

// Apply applies a command of the partition. Its errors are deterministic
// answers (ErrNotReady, ErrReset, ErrBusy), the same on every replica;
// state changes only when it returns nil (a settle of records that are
// not open changes nothing and is no error).
func (qs *Set) Apply(c *Cmd) error {
	q := qs.Get(c.Group)
	switch c.Op {
	case OpInit:
		if q == nil {
			qs.put(newState(c.Group, c.Gen, c.Arg))
		}
		return nil
	case OpReset:
		if q == nil {
			qs.put(newState(c.Group, c.Gen, c.Arg))
			return nil
		}
		return q.reset(c)
	}
	if q == nil {
		return fmt.Errorf("%w: group %q", ErrNotReady, c.Group)
	}
	return q.apply(c)
}

func (q *State) apply(c *Cmd) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c.Gen != q.gen {
		return fmt.Errorf("%w: command of generation %d, group %q is at %d", ErrReset, c.Gen, c.Group, q.gen)
	}
	switch c.Op {
	case OpDeliver:
		q.applyDeliverLocked(c)
	case OpAck, OpNack, OpDeadMark, OpDead:
		q.applySettleLocked(c)
	default:
		// DecodeCmd refuses unknown ops: a replica that gets here would
		// diverge from the others.
		panic(fmt.Sprintf("queue: unknown op %d", c.Op))
	}
	return nil
}

func (q *State) reset(c *Cmd) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.slots.s {
		if q.slots.s[i].state == slotDeadPending {
			return fmt.Errorf("%w: dead letters of %q are being written", ErrBusy, q.group)
		}
	}
	q.gen, q.floor, q.next = c.Gen, c.Arg, c.Arg
	q.slots = window[slot]{}
	return nil
}

// Caller must hold q.mu.
func (q *State) applyDeliverLocked(c *Cmd) {
	for _, off := range c.Offsets {
		if off < q.floor {
			continue
		}
		if i := off - q.floor; i >= int64(len(q.slots.s)) {
			q.slots.grow(int(i) + 1)
		}
		s := &q.slots.s[off-q.floor]
		if s.state != slotOpen {
			continue
		}
		if c.Flags&FlagNoCount == 0 {
			s.deliveries++
			if s.deliveries > 1 {
				q.redelivered++
			}
		}
		q.delivered++
		s.out = true
		q.next = max(q.next, off+1)
	}
}

// Caller must hold q.mu.
func (q *State) applySettleLocked(c *Cmd) {
	for i, off := range c.Offsets {
		s := q.slotLocked(off)
		if s == nil {
			continue
		}
		switch {
		case c.Op == OpAck && s.state == slotOpen:
			s.state, s.out = slotAcked, false
			q.acked++
		case c.Op == OpNack && s.state == slotOpen:
			s.notBefore, s.out = c.Times[i], false
			if c.Text != "" {
				s.lastErr = c.Text
			}
		case c.Op == OpDeadMark && s.state == slotOpen:
			s.state, s.reason, s.out = slotDeadPending, c.Reason, false
			if c.Text != "" {
				s.lastErr = c.Text
			}
			s.dlqSeq = q.dlqSeq
			q.dlqSeq++
		case c.Op == OpDead && s.state == slotDeadPending:
			s.state = slotDead
			q.dead++
		}
	}
	// Move the floor over what is done.
	n := 0
	for n < len(q.slots.s) && q.slots.s[n].done() {
		n++
	}
	q.slots.trim(n)
	q.floor += int64(n)
}
