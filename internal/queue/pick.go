package queue

import "time"

// PickParams are a receive's parameters.
type PickParams struct {
	Now           time.Time
	Member        string
	Max           int
	MaxLeased     int
	MaxWindow     int
	KeyOrdering   bool
	AckTimeout    time.Duration
	MaxDeliveries int32
	Term          uint64
}

// PickResult is what Pick reserved.
type PickResult struct {
	Gen     uint64
	Offsets []int64
	// NextDue is the earliest future time at which a record may become
	// available (a backoff, a delay or a lease ending); zero when none.
	NextDue time.Time
	// Expired is true when a record reached max deliveries with its lease
	// expired: it is to be dead-lettered.
	Expired bool
}

// Pick appends the fresh records that continue the window, then reserves
// up to Max records for Member: records whose lease expired or whose
// backoff or delay elapsed, in offset order, with key ordering when asked.
// It returns nothing when the scratch is not loaded for Term.
func (l *Leader) Pick(pp PickParams, fresh []RecInfo) PickResult {
	q := l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	res := PickResult{Gen: q.gen}
	if l.term != pp.Term || l.loading || !l.syncLocked() {
		return res
	}
	l.appendLocked(fresh, pp.MaxWindow)
	nowMs := pp.Now.UnixMilli()
	var seen map[uint64]bool
	if pp.KeyOrdering {
		seen = map[uint64]bool{}
	}
	due := func(t time.Time) {
		if res.NextDue.IsZero() || t.Before(res.NextDue) {
			res.NextDue = t
		}
	}
	leased := 0
	var cands []int
	var fresh0 slot // the replicated state of a record past next: open, never delivered
	for i := range l.leases.s {
		ls, s := &l.leases.s[i], &fresh0
		if i < len(q.slots.s) {
			s = &q.slots.s[i]
		}
		if s.state != slotOpen {
			continue
		}
		blocked := false
		if seen != nil && ls.hasKey {
			blocked = seen[ls.keyHash]
			seen[ls.keyHash] = true
		}
		if ls.reserved || ls.until.After(pp.Now) {
			leased++
			if !ls.reserved {
				due(ls.until)
			}
			continue
		}
		if !ls.until.IsZero() {
			ls.until, ls.member = time.Time{}, ""
			l.expiries++
		}
		count := s.deliveries + ls.memCount
		switch {
		case count >= pp.MaxDeliveries:
			res.Expired = true
			continue
		case blocked:
			continue
		case count > 0 && s.notBefore > nowMs:
			due(time.UnixMilli(s.notBefore))
			continue
		case count == 0 && ls.deliverAt > nowMs:
			due(time.UnixMilli(ls.deliverAt))
			continue
		}
		if len(cands) < pp.Max {
			cands = append(cands, i)
		}
	}
	if room := pp.MaxLeased - leased; len(cands) > room {
		cands = cands[:max(room, 0)]
	}
	for _, i := range cands {
		ls := &l.leases.s[i]
		ls.reserved, ls.member, ls.until = true, pp.Member, pp.Now.Add(pp.AckTimeout)
		res.Offsets = append(res.Offsets, l.base+int64(i))
	}
	return res
}

// appendLocked extends the window with the records of fresh that continue
// it, up to maxWindow records. Caller must hold l.q.mu.
func (l *Leader) appendLocked(fresh []RecInfo, maxWindow int) {
	for _, r := range fresh {
		n := len(l.leases.s)
		if r.Offset != l.base+int64(n) || n >= maxWindow {
			return
		}
		l.leases.grow(n + 1)
		ls := &l.leases.s[n]
		ls.keyHash, ls.hasKey, ls.deliverAt = r.KeyHash, r.HasKey, r.DeliverAt
	}
}
