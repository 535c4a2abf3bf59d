package queue

import (
	"math/rand/v2"
	"testing"
)

// TestWindow checks a window on its array against a plain slice model:
// growing keeps every element and zeroes the new ones, trimming the front
// or cutting the end drops elements, and a window that keeps moving at a
// steady size stops allocating.
func TestWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var w window[slot]
	var model []int32 // deliveries of each slot, 0 for a new one
	stamp := int32(0)
	for step := range 20000 {
		switch op := rng.IntN(6); {
		case op == 0 && len(w.s) > 0:
			// Cut the end without clearing it: grown again, it must
			// come back zero.
			n := rng.IntN(len(w.s) + 1)
			w.s = w.s[:n]
			model = model[:n]
		case op == 1:
			n := rng.IntN(len(w.s) + 1)
			w.cut(n)
			model = model[:n]
		case op <= 3:
			n := len(w.s) + 1 + rng.IntN(40)
			w.grow(n)
			for len(model) < n {
				model = append(model, 0)
			}
		default:
			n := rng.IntN(len(w.s) + 1)
			w.trim(n)
			model = model[n:]
		}
		// Mark every slot so that a slot that comes back stale shows.
		for i := range w.s {
			if w.s[i].deliveries != model[i] {
				t.Fatalf("step %d: slot %d has deliveries %d, want %d (len %d)", step, i, w.s[i].deliveries, model[i], len(w.s))
			}
			stamp++
			w.s[i].deliveries, model[i] = stamp, stamp
		}
		if head := cap(w.arr) - cap(w.s); len(w.s) > 0 && &w.arr[:cap(w.arr)][head] != &w.s[0] {
			t.Fatalf("step %d: the window does not end at its array's capacity", step)
		}
	}

	// Steady state: a window of 1,000 moving by 100 allocates nothing.
	w = window[slot]{}
	w.grow(1000)
	move := func() {
		w.trim(100)
		w.grow(len(w.s) + 100)
	}
	for range 100 {
		move()
	}
	if a := testing.AllocsPerRun(1000, move); a != 0 {
		t.Fatalf("a steady window allocates %.2f times per move", a)
	}
}
