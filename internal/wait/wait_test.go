package wait

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	var n atomic.Int32
	if !Until(time.Second, func() bool { return n.Add(1) == 5 }) {
		t.Fatal("a condition that holds on the fifth check was not seen")
	}
	start := time.Now()
	if Until(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds was reported held")
	}
	if el := time.Since(start); el < 20*time.Millisecond || el > time.Second {
		t.Fatalf("Until returned after %v for a 20ms deadline", el)
	}
	n.Store(0)
	if !Until(0, func() bool { n.Add(1); return true }) || n.Load() != 1 {
		t.Fatal("a zero deadline must still check once")
	}
}

// fakeTB records a failure instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
	_ = args
}

func TestForAndNoError(t *testing.T) {
	var f fakeTB
	For(&f, 10*time.Millisecond, "never", func() bool { return false })
	if f.failed == "" {
		t.Fatal("For did not fail on a condition that never holds")
	}
	f.failed = ""
	For(&f, time.Second, "at once", func() bool { return true })
	NoError(&f, time.Second, "at once", func() error { return nil })
	if f.failed != "" {
		t.Fatal("For or NoError failed on a condition that holds")
	}
	NoError(&f, 10*time.Millisecond, "never", func() error { return errors.New("no") })
	if f.failed == "" {
		t.Fatal("NoError did not fail on an error that stays")
	}
}
