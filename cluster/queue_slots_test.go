package cluster

import (
	"math/rand/v2"
	"testing"
)

// TestQueueSlotsWindow checks the slots' window on its array against a
// plain slice model: growing keeps every slot and zeroes the new ones,
// trimming the front or cutting the end drops slots, and a window that keeps moving at a
// steady size stops allocating.
func TestQueueSlotsWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := &QueueState{}
	var model []int32 // deliveries of each slot, 0 for a new one
	stamp := int32(0)
	for step := range 20000 {
		switch op := rng.IntN(5); {
		case op == 0 && len(q.slots) > 0:
			// Cut the end without clearing it: grown again, it must
			// come back zero.
			n := rng.IntN(len(q.slots) + 1)
			q.slots = q.slots[:n]
			model = model[:n]
		case op <= 2:
			n := len(q.slots) + 1 + rng.IntN(40)
			q.growSlotsLocked(n)
			for len(model) < n {
				model = append(model, 0)
			}
		default:
			n := rng.IntN(len(q.slots) + 1)
			clear(q.slots[:n]) // as applySettleLocked does
			q.slots = q.slots[n:]
			model = model[n:]
		}
		// Mark every slot so that a slot that comes back stale shows.
		for i := range q.slots {
			if q.slots[i].deliveries != model[i] {
				t.Fatalf("step %d: slot %d has deliveries %d, want %d (len %d)", step, i, q.slots[i].deliveries, model[i], len(q.slots))
			}
			stamp++
			q.slots[i].deliveries, model[i] = stamp, stamp
		}
		if head := cap(q.slotArr) - cap(q.slots); len(q.slots) > 0 && &q.slotArr[:cap(q.slotArr)][head] != &q.slots[0] {
			t.Fatalf("step %d: slots are not a window on slotArr ending at its capacity", step)
		}
	}

	// Steady state: a window of 1,000 moving by 100 allocates nothing.
	q = &QueueState{}
	q.growSlotsLocked(1000)
	move := func() {
		clear(q.slots[:100])
		q.slots = q.slots[100:]
		q.growSlotsLocked(len(q.slots) + 100)
	}
	for range 100 {
		move()
	}
	if a := testing.AllocsPerRun(1000, move); a != 0 {
		t.Fatalf("a steady window allocates %.2f times per move", a)
	}
}
