package wait

import (
	"runtime"
	"testing"
	"time"
)

const (
	// firstPoll is the first interval between two checks; it doubles up
	// to maxPoll, so fast conditions are seen at once and slow ones do not
	// spin (some conditions start a CLI process per check).
	firstPoll = time.Millisecond
	maxPoll   = 100 * time.Millisecond
)

// For polls cond until it returns true and fails the test with what if
// that does not happen within d.
func For(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// NoError polls fn until it returns nil and fails the test with what and
// fn's last error if that does not happen within d.
func NoError(t testing.TB, d time.Duration, what string, fn func() error) {
	t.Helper()
	var last error
	if !Until(d, func() bool { last = fn(); return last == nil }) {
		t.Fatalf("timed out after %v waiting for %s: %v", d, what, last)
	}
}

// Until polls cond until it returns true or d passes, and reports whether
// it held. It is for callers that fail in their own way (a benchmark, a
// helper that returns an error); cond is always checked at least once,
// and once more at the deadline.
func Until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	poll := firstPoll
	for {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(poll, left))
		poll = min(2*poll, maxPoll)
	}
}

// Goroutines waits up to d until no more goroutines run than baseline (a
// count taken before the code under test started its own), and fails the
// test with every goroutine's stack if some are left: a Close that does
// not join what it started.
func Goroutines(t testing.TB, d time.Duration, baseline int) {
	t.Helper()
	if !Until(d, func() bool { return runtime.NumGoroutine() <= baseline }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
	}
}
