package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// membership is a generation of the group as this member sees it.
type membership struct {
	memberID string
	gen      int32
	parts    []TopicPartition // sorted
}

// groupLoop joins the group, heartbeats at the interval the coordinator
// asks for, and auto-commits. A new generation or assignment is left in
// co.pending for Poll to apply; a membership the group forgot (the
// session expired) is renewed by joining again.
func (co *Consumer) groupLoop() {
	defer co.wg.Done()
	ctx := co.ctx
	interval := co.join(ctx, "")
	if ctx.Err() != nil {
		return
	}
	hb := time.NewTicker(interval)
	defer hb.Stop()
	var commits <-chan time.Time
	if co.cfg.AutoCommit {
		t := time.NewTicker(co.cfg.AutoCommitInterval)
		defer t.Stop()
		commits = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			if d := co.heartbeat(ctx); d > 0 && d != interval {
				interval = d
				hb.Reset(interval)
			}
		case <-commits:
			co.autoCommit(ctx)
		}
	}
}

// join joins the group (again, when memberID is given and known) until it
// succeeds or ctx ends, and returns the heartbeat interval.
func (co *Consumer) join(ctx context.Context, memberID string) time.Duration {
	req := &stratav1.JoinGroupRequest{
		Group: co.cfg.Group, MemberId: memberID, Topics: co.cfg.Topics,
		SessionTimeoutMs: int32(co.cfg.SessionTimeout.Milliseconds()), ClientId: co.c.cfg.ClientID,
	}
	for failures := 0; ; failures++ {
		var resp *stratav1.JoinGroupResponse
		err := co.c.callAny(ctx, ErrUnknownTopic, func(ctx context.Context, s stratav1.StrataClient) error {
			var err error
			resp, err = s.JoinGroup(ctx, req)
			return err
		})
		if err == nil {
			co.setMembership(resp.GetMemberId(), resp.GetGeneration(), resp.GetAssignments())
			co.log.Info("joined group", "group", co.cfg.Group, "member", resp.GetMemberId(),
				"generation", resp.GetGeneration(), "partitions", len(resp.GetAssignments()))
			return heartbeatInterval(resp.GetHeartbeatIntervalMs(), co.cfg.SessionTimeout)
		}
		if ctx.Err() != nil {
			return time.Second
		}
		if errors.Is(err, ErrUnknownMember) {
			req.MemberId = ""
		}
		co.log.Warn("cannot join group", "group", co.cfg.Group, "err", err)
		co.mu.Lock()
		if !retriable(err) {
			// Report it on Poll (an unknown topic, a bad name), and keep
			// trying: the topic may be created.
			co.reportGroupLocked(err)
		}
		co.mu.Unlock()
		if !sleep(ctx, backoffDelay(co.c.cfg.RetryBackoff, co.c.cfg.MaxRetryBackoff, failures+2)) {
			return time.Second
		}
	}
}

// heartbeatInterval is the interval the coordinator asked for, else a
// third of the session timeout.
func heartbeatInterval(ms int32, session time.Duration) time.Duration {
	if ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return max(session/3, 100*time.Millisecond)
}

// heartbeat sends one heartbeat and returns the interval to use (0 to
// keep the current one).
func (co *Consumer) heartbeat(ctx context.Context) time.Duration {
	co.mu.Lock()
	req := &stratav1.HeartbeatRequest{Group: co.cfg.Group, MemberId: co.memberID, Generation: co.gen}
	co.mu.Unlock()
	var resp *stratav1.HeartbeatResponse
	err := co.c.callAny(ctx, ErrUnknownMember, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.Heartbeat(ctx, req)
		return err
	})
	switch {
	case err == nil:
		co.setMembership(req.MemberId, resp.GetGeneration(), resp.GetAssignments())
		return 0
	case ctx.Err() != nil:
		return 0
	case errors.Is(err, ErrUnknownMember) || errors.Is(err, ErrNotFound):
		co.log.Warn("group forgot this member; joining again", "group", co.cfg.Group, "member", req.MemberId)
		return co.join(ctx, "")
	}
	co.log.Warn("heartbeat failed", "group", co.cfg.Group, "err", err)
	return 0
}

// refreshGeneration sends a heartbeat to learn the current generation
// and assignment; it reports whether it did.
func (co *Consumer) refreshGeneration(ctx context.Context) bool {
	co.mu.Lock()
	req := &stratav1.HeartbeatRequest{Group: co.cfg.Group, MemberId: co.memberID, Generation: co.gen}
	co.mu.Unlock()
	var resp *stratav1.HeartbeatResponse
	err := co.c.callAny(ctx, ErrUnknownMember, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.Heartbeat(ctx, req)
		return err
	})
	if err != nil {
		return false
	}
	co.setMembership(req.MemberId, resp.GetGeneration(), resp.GetAssignments())
	return true
}

// setMembership records a membership from a join or a heartbeat. The
// member id and generation apply at once (heartbeats and commits must
// carry the current ones); a new assignment is left for Poll.
func (co *Consumer) setMembership(memberID string, gen int32, assigned []*stratav1.TopicPartition) {
	parts := make([]TopicPartition, 0, len(assigned))
	for _, a := range assigned {
		parts = append(parts, TopicPartition{a.GetTopic(), a.GetPartition()})
	}
	parts = slices.Compact(sortedParts(parts))
	co.mu.Lock()
	defer co.mu.Unlock()
	co.memberID, co.gen, co.joined = memberID, gen, true
	switch {
	case co.pending != nil:
		if slices.Equal(parts, co.pending.parts) {
			return
		}
	case co.assigned:
		if slices.Equal(parts, sortedParts(slices.Collect(maps.Keys(co.parts)))) {
			return
		}
	}
	co.pending = &membership{memberID: memberID, gen: gen, parts: parts}
	co.broadcastLocked()
}

// reportGroupLocked leaves a group error for Poll. Caller must hold
// co.mu.
func (co *Consumer) reportGroupLocked(err error) {
	co.groupErr = fmt.Errorf("client: join group %q: %w", co.cfg.Group, err)
	co.broadcastLocked()
}

// apply switches to a new membership, on Poll's goroutine: OnRevoke and
// a commit for the partitions taken away, then OnAssign for the new ones.
func (co *Consumer) apply(ctx context.Context, m *membership) {
	co.mu.Lock()
	co.assigned = true
	want := map[TopicPartition]bool{}
	for _, tp := range m.parts {
		want[tp] = true
	}
	var revoked, added []TopicPartition
	revokedPos := map[TopicPartition]int64{}
	for tp, f := range co.parts {
		if !want[tp] {
			revoked = append(revoked, tp)
			if f.pos >= 0 {
				revokedPos[tp] = f.pos
			}
		}
	}
	for _, tp := range m.parts {
		if co.parts[tp] == nil {
			added = append(added, tp)
		}
	}
	co.mu.Unlock()
	revoked = sortedParts(revoked)

	if len(revoked) > 0 {
		if co.cfg.OnRevoke != nil {
			co.cfg.OnRevoke(revoked)
		}
		if co.cfg.AutoCommit {
			if err := co.commit(ctx, revokedPos); err != nil {
				co.log.Warn("commit of revoked partitions failed", "group", co.cfg.Group, "err", err)
			}
		}
	}
	co.mu.Lock()
	for _, tp := range revoked {
		co.dropLocked(tp)
	}
	if !co.closed {
		for _, tp := range added {
			co.startLocked(tp, AtCommitted())
		}
	}
	co.mu.Unlock()
	if len(added) > 0 && co.cfg.OnAssign != nil {
		co.cfg.OnAssign(added)
	}
}

// autoCommit commits the positions as of the latest Poll.
func (co *Consumer) autoCommit(ctx context.Context) {
	co.mu.Lock()
	if co.pending != nil {
		co.mu.Unlock()
		return // a rebalance is on its way; Poll commits what it revokes
	}
	offs := map[TopicPartition]int64{}
	for tp, f := range co.parts {
		if f.polled >= 0 {
			offs[tp] = f.polled
		}
	}
	co.mu.Unlock()
	if err := co.commit(ctx, offs); err != nil && ctx.Err() == nil {
		co.log.Warn("auto-commit failed", "group", co.cfg.Group, "err", err)
	}
}
