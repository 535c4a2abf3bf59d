package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// IsTerminal reports whether f is a character device (a terminal), where a
// progress line that rewrites itself makes sense.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// startProgress prints "label: N/total records, R/s" to w every second,
// rewriting the line, until the returned function is called (which clears
// the line). A nil w prints nothing.
func startProgress(w io.Writer, label string, n *atomic.Int64, total int64) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		last, lastT := int64(0), start
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case now := <-t.C:
				c := n.Load()
				fmt.Fprintf(w, "\r\033[K%s: %d/%d records, %s records/s now, %s records/s overall",
					label, c, total, Count(float64(c-last)/now.Sub(lastT).Seconds()),
					Count(float64(c)/now.Sub(start).Seconds()))
				last, lastT = c, now
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
