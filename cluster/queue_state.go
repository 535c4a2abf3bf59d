package cluster

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Per-partition state of queue groups. For each queue group that has
// touched a partition, the data FSM keeps:
//
//   - the floor: every offset below it is done (acked or dead-lettered);
//   - next: one past the highest offset ever delivered;
//   - one slot per offset in [floor, next): deliveries so far, done or not,
//     not-before time (backoff), last error, dead-letter state.
//
// So the state is bounded by the window between the floor and the highest
// delivered offset, which the leader caps. Delivery counts, acks, backoffs
// and dead-letter marks change only through raft commands, so they are the
// same on every replica and survive restarts and leader changes. Leases are
// not replicated: they live in the leader's memory, in the same slots, as
// "scratch" fields that Apply never reads and snapshots never hold.

// Slot states.
const (
	slotOpen        uint8 = 0
	slotAcked       uint8 = 1
	slotDeadPending uint8 = 2 // marked for the dead-letter topic, not yet written
	slotDead        uint8 = 3
)

type qslot struct {
	// Replicated.
	deliveries int32
	state      uint8
	reason     uint8
	out        bool  // delivered and not nacked since: a lease may be live
	notBefore  int64 // unix ms
	dlqSeq     int32
	lastErr    string

	// Leader scratch: never read by Apply, never snapshotted.
	leaseUntil time.Time // monotonic
	member     string
	reserved   bool // an operation on the slot is in flight
	keyHash    uint64
	hasKey     bool
	deliverAt  int64 // unix ms, from the deliver-at header
	memCount   int32 // deliveries counted only in memory (unsafe test mode)
	leasedAt   int64 // unix ns of the last delivery's commit (Delivered); 0: unknown
}

func (s *qslot) done() bool { return s.state == slotAcked || s.state == slotDead }

// QueueState is one queue group's state on one partition.
type QueueState struct {
	mu    sync.Mutex // guards everything below
	group string
	gen   uint64
	floor int64
	next  int64
	// slots[i] is offset floor+i. On the leader it may run past next:
	// records read and reserved but not yet delivered. slots is a window
	// on slotArr that ends at slotArr's capacity; the floor moving on
	// frees the array's front, which growSlotsLocked reuses, so a queue
	// that keeps up allocates no new slots.
	slots   []qslot
	slotArr []qslot
	dlqSeq  int32

	acked, dead, delivered, redelivered uint64

	// Leader scratch.
	expiries uint64 // leases found expired since TakeLeaseExpiries
	term     uint64 // raft term the scratch was loaded in; 0: not loaded
	loading  bool
	// readAhead is the leader's caller's own value (see ReadAhead).
	readAhead any
}

// queueSet holds a partition's queue states.
type queueSet struct {
	mu sync.Mutex
	m  map[string]*QueueState
}

func (qs *queueSet) get(group string) *QueueState {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return qs.m[group]
}

func (qs *queueSet) put(q *QueueState) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.m == nil {
		qs.m = map[string]*QueueState{}
	}
	qs.m[q.group] = q
}

func (qs *queueSet) all() []*QueueState {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	out := make([]*QueueState, 0, len(qs.m))
	for _, k := range slices.Sorted(maps.Keys(qs.m)) {
		out = append(out, qs.m[k])
	}
	return out
}

// Queue returns a queue group's state on the partition, or nil.
func (p *Partition) Queue(group string) *QueueState { return p.queues.get(group) }

func (f *DataFSM) applyQueue(l *raft.Log) any {
	c, err := DecodeQueueCmd(l.Data)
	if err != nil {
		panic(fmt.Sprintf("cluster: queue command at index %d: %v", l.Index, err))
	}
	p := f.Partition(c.Key)
	if p == nil {
		return fmt.Errorf("%w: topic id %d partition %d", ErrUnknownPartition, c.Key.TopicID, c.Key.Partition)
	}
	q := p.queues.get(c.Group)
	switch c.Op {
	case QueueInit:
		if q == nil {
			p.queues.put(&QueueState{group: c.Group, gen: c.Gen, floor: c.Arg, next: c.Arg})
		}
		return nil
	case QueueReset:
		if q == nil {
			p.queues.put(&QueueState{group: c.Group, gen: c.Gen, floor: c.Arg, next: c.Arg})
			return nil
		}
		return q.reset(c)
	}
	if q == nil {
		return fmt.Errorf("%w: %q on %s/%d", ErrQueueNotReady, c.Group, p.Topic, c.Key.Partition)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if c.Gen != q.gen {
		return fmt.Errorf("%w: command of generation %d, group %q is at %d", ErrQueueReset, c.Gen, c.Group, q.gen)
	}
	switch c.Op {
	case QueueDeliver:
		q.applyDeliverLocked(&c)
	case QueueAck, QueueNack, QueueDeadMark, QueueDead:
		q.applySettleLocked(&c)
	default:
		panic(fmt.Sprintf("cluster: unknown queue op %d at index %d", c.Op, l.Index))
	}
	return nil
}

func (q *QueueState) reset(c QueueCmd) any {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.slots {
		if q.slots[i].state == slotDeadPending && q.floor+int64(i) < q.next {
			return fmt.Errorf("%w: dead letters of %q are being written", ErrQueueBusy, q.group)
		}
	}
	q.gen, q.floor, q.next, q.slots, q.slotArr = c.Gen, c.Arg, c.Arg, nil, nil
	q.term = 0 // the leader reloads its scratch
	return nil
}

// slotLocked returns the slot of off, extending the slots up to it, or nil
// below the floor. Caller must hold q.mu.
func (q *QueueState) slotLocked(off int64) *qslot {
	if off < q.floor {
		return nil
	}
	i := off - q.floor
	if i >= int64(len(q.slots)) {
		q.growSlotsLocked(int(i) + 1)
	}
	return &q.slots[i]
}

// growSlotsLocked extends the slots to n, the new ones zero. When the
// array has no room at its end it moves the window to the array's front
// if that leaves at least as much room again as the window holds (so the
// copy is paid for by as many appends), else it allocates an array twice
// as large. Caller must hold q.mu.
func (q *QueueState) growSlotsLocked(n int) {
	old := len(q.slots)
	if n <= old {
		return
	}
	if n > cap(q.slots) {
		if 2*n <= cap(q.slotArr) {
			end := cap(q.slotArr) - cap(q.slots) + old // where the window ends in slotArr
			copy(q.slotArr, q.slots)
			clear(q.slotArr[old:end]) // the moved slots' old places: drop their strings
			q.slots = q.slotArr[:old]
		} else {
			q.slotArr = make([]qslot, max(2*n, 64))
			copy(q.slotArr, q.slots)
			q.slots = q.slotArr[:old]
		}
	}
	q.slots = q.slots[:n]
	clear(q.slots[old:])
}

// Caller must hold q.mu.
func (q *QueueState) applyDeliverLocked(c *QueueCmd) {
	for _, off := range c.Offsets {
		s := q.slotLocked(off)
		if s == nil || s.state != slotOpen {
			continue
		}
		if c.Flags&QueueFlagNoCount == 0 {
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
func (q *QueueState) applySettleLocked(c *QueueCmd) {
	for i, off := range c.Offsets {
		if off < q.floor || off >= q.next {
			continue
		}
		s := &q.slots[off-q.floor]
		switch {
		case c.Op == QueueAck && s.state == slotOpen:
			s.state, s.out = slotAcked, false
			q.acked++
		case c.Op == QueueNack && s.state == slotOpen:
			s.notBefore, s.out = c.Times[i], false
			if c.Text != "" {
				s.lastErr = c.Text
			}
		case c.Op == QueueDeadMark && s.state == slotOpen:
			s.state, s.reason, s.out = slotDeadPending, c.Reason, false
			if c.Text != "" {
				s.lastErr = c.Text
			}
			s.dlqSeq = q.dlqSeq
			q.dlqSeq++
		case c.Op == QueueDead && s.state == slotDeadPending:
			s.state = slotDead
			q.dead++
		}
	}
	// Move the floor over what is done, never past next.
	n := 0
	for n < len(q.slots) && q.floor+int64(n) < q.next && q.slots[n].done() {
		q.slots[n] = qslot{}
		n++
	}
	q.slots = q.slots[n:]
	q.floor += int64(n)
}

// queueSnap is a queue state in the data group's manifest.
type queueSnap struct {
	Group       string     `json:"group"`
	Gen         uint64     `json:"gen"`
	Floor       int64      `json:"floor"`
	Next        int64      `json:"next"`
	DLQSeq      int32      `json:"dlq_seq"`
	Acked       uint64     `json:"acked"`
	Dead        uint64     `json:"dead"`
	Delivered   uint64     `json:"delivered"`
	Redelivered uint64     `json:"redelivered"`
	Slots       []slotSnap `json:"slots,omitempty"`
}

type slotSnap struct {
	D  int32  `json:"d,omitempty"`
	S  uint8  `json:"s,omitempty"`
	R  uint8  `json:"r,omitempty"`
	O  bool   `json:"o,omitempty"`
	NB int64  `json:"nb,omitempty"`
	Q  int32  `json:"q,omitempty"`
	E  string `json:"e,omitempty"`
}

// snapshotQueues captures a partition's queue states (on the FSM
// goroutine, so exactly as of the last applied entry).
func (p *Partition) snapshotQueues() []queueSnap {
	var out []queueSnap
	for _, q := range p.queues.all() {
		q.mu.Lock()
		s := queueSnap{Group: q.group, Gen: q.gen, Floor: q.floor, Next: q.next, DLQSeq: q.dlqSeq,
			Acked: q.acked, Dead: q.dead, Delivered: q.delivered, Redelivered: q.redelivered}
		for i := int64(0); i < q.next-q.floor; i++ {
			sl := &q.slots[i]
			s.Slots = append(s.Slots, slotSnap{D: sl.deliveries, S: sl.state, R: sl.reason, O: sl.out,
				NB: sl.notBefore, Q: sl.dlqSeq, E: sl.lastErr})
		}
		q.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// restoreQueues sets a restored partition's queue states.
func (p *Partition) restoreQueues(snaps []queueSnap) {
	for _, s := range snaps {
		q := &QueueState{group: s.Group, gen: s.Gen, floor: s.Floor, next: s.Next, dlqSeq: s.DLQSeq,
			acked: s.Acked, dead: s.Dead, delivered: s.Delivered, redelivered: s.Redelivered}
		q.growSlotsLocked(len(s.Slots))
		for i, sl := range s.Slots {
			q.slots[i] = qslot{deliveries: sl.D, state: sl.S, reason: sl.R, out: sl.O,
				notBefore: sl.NB, dlqSeq: sl.Q, lastErr: sl.E}
		}
		p.queues.put(q)
	}
}
