package broker

import (
	"context"
	"sync/atomic"
	"time"
)

// WaitMeter sums the time a request spent in long-poll waits (a fetch
// waiting for records, a queue receive waiting for a lease), so that the
// time it took to serve can be told from the time it chose to wait: a
// slow-request log must not report every long poll.
type WaitMeter struct{ ns atomic.Int64 }

type waitMeterKey struct{}

// WithWaitMeter returns a context whose long-poll waits the broker adds to
// the returned meter.
func WithWaitMeter(ctx context.Context) (context.Context, *WaitMeter) {
	m := &WaitMeter{}
	return context.WithValue(ctx, waitMeterKey{}, m), m
}

// Waited returns the time spent in long-poll waits so far.
func (m *WaitMeter) Waited() time.Duration { return time.Duration(m.ns.Load()) }

// addWait adds d to ctx's meter, if it has one.
func addWait(ctx context.Context, d time.Duration) {
	if m, ok := ctx.Value(waitMeterKey{}).(*WaitMeter); ok {
		m.ns.Add(int64(d))
	}
}
