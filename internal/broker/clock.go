package broker

import "time"

// now returns the wall clock the queue code reads: backoffs after a nack
// (notBefore, unix ms, replicated), delayed delivery (deliver-at, unix ms),
// and leases and waits, which compare and subtract these times on their
// monotonic readings whenever both sides have one. It is time.Now, except
// in tests that give each node of a cluster a skewed clock (Config.clock);
// every time the queue code reads must come from here, and every wait it
// derives from such a time must be measured against it too (a context
// deadline measures against time.Now), or a skewed test clock and the real
// one would mix.
func (b *Broker) now() time.Time {
	if c := b.cfg.clock; c != nil {
		return c()
	}
	return time.Now()
}
