package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// GroupSummary is one consumer group in a list.
type GroupSummary struct {
	Group   string `json:"group"`
	State   string `json:"state"`
	Members int    `json:"members"`
}

// GroupMember is a live member of a consumer group.
type GroupMember struct {
	ID          string   `json:"id"`
	ClientID    string   `json:"client_id"`
	Assignments []string `json:"assignments"` // topic/partition
}

// GroupLag is a group's progress on one partition.
type GroupLag struct {
	Topic      string  `json:"topic"`
	Partition  int32   `json:"partition"`
	Committed  int64   `json:"committed"` // -1: nothing committed
	End        int64   `json:"end_offset"`
	LagRecords int64   `json:"lag_records"`
	LagSeconds float64 `json:"lag_seconds"`
	Member     string  `json:"member,omitempty"`
	// Unknown says the partition's leader could not be asked: End,
	// LagRecords and LagSeconds are -1.
	Unknown bool `json:"unknown,omitempty"`
}

// Group is a consumer group described by its coordinator.
type Group struct {
	Group         string        `json:"group"`
	State         string        `json:"state"`
	Generation    int32         `json:"generation"`
	Members       []GroupMember `json:"members"`
	Partitions    []GroupLag    `json:"partitions"`
	LagRecords    int64         `json:"lag_records"`
	MaxLagSeconds float64       `json:"max_lag_seconds"`
	// Unknown counts the partitions whose leader could not be asked,
	// left out of LagRecords and MaxLagSeconds.
	Unknown int `json:"unknown_partitions,omitempty"`
}

// groups lists the consumer groups the caller may describe, as the
// coordinator knows them (members live there only).
func (cl *call) groups() ([]GroupSummary, error) {
	all, err := onCoordinator(cl, func() ([]GroupSummary, error) {
		var out []GroupSummary
		for _, g := range cl.c.b.ListGroups() {
			out = append(out, GroupSummary{Group: g.Name, State: g.State, Members: g.Members})
		}
		return out, nil
	}, func(s stratav1.StrataClient) ([]GroupSummary, error) {
		resp, err := s.ListGroups(cl.ctx, &stratav1.ListGroupsRequest{})
		if err != nil {
			return nil, err
		}
		var out []GroupSummary
		for _, g := range resp.Groups {
			out = append(out, GroupSummary{Group: g.Group, State: g.State, Members: int(g.Members)})
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	out := []GroupSummary{}
	for _, g := range all {
		if cl.allowed(auth.OpDescribe, auth.ResourceGroup, g.Group) {
			out = append(out, g)
		}
	}
	return out, nil
}

// group describes a consumer group, showing only the topics the caller
// may describe. The coordinator's describe measures each partition on its
// leader (broker.DescribeGroup).
func (cl *call) group(name string) (Group, error) {
	if err := cl.require(auth.OpDescribe, auth.ResourceGroup, name); err != nil {
		return Group{}, err
	}
	g, err := onCoordinator(cl, func() (Group, error) {
		d, err := cl.c.b.DescribeGroup(cl.ctx, name)
		if err != nil {
			return Group{}, err
		}
		g := Group{Group: d.Name, State: d.State, Generation: d.Generation}
		for _, m := range d.Members {
			gm := GroupMember{ID: m.ID, ClientID: m.ClientID}
			for _, tp := range m.Assignments {
				gm.Assignments = append(gm.Assignments, tp.Topic+"/"+strconv.Itoa(int(tp.Partition)))
			}
			g.Members = append(g.Members, gm)
		}
		for _, p := range d.Partitions {
			g.Partitions = append(g.Partitions, GroupLag{Topic: p.Topic, Partition: p.Partition, Committed: p.Committed,
				End: p.EndOffset, LagRecords: p.LagRecords, LagSeconds: p.LagSeconds, Member: p.MemberID, Unknown: p.Unknown})
		}
		return g, nil
	}, func(s stratav1.StrataClient) (Group, error) {
		d, err := s.DescribeGroup(cl.ctx, &stratav1.DescribeGroupRequest{Group: name})
		if err != nil {
			return Group{}, err
		}
		g := Group{Group: d.Group, State: d.State, Generation: d.Generation}
		for _, m := range d.Members {
			gm := GroupMember{ID: m.MemberId, ClientID: m.ClientId}
			for _, tp := range m.Assignments {
				gm.Assignments = append(gm.Assignments, tp.Topic+"/"+strconv.Itoa(int(tp.Partition)))
			}
			g.Members = append(g.Members, gm)
		}
		for _, p := range d.Partitions {
			g.Partitions = append(g.Partitions, GroupLag{Topic: p.Topic, Partition: p.Partition, Committed: p.CommittedOffset,
				End: p.EndOffset, LagRecords: p.LagRecords, LagSeconds: p.LagSeconds, Member: p.MemberId, Unknown: p.Unknown})
		}
		return g, nil
	})
	if err != nil {
		return Group{}, err
	}
	kept := []GroupLag{}
	for _, p := range g.Partitions {
		if !cl.allowed(auth.OpDescribe, auth.ResourceTopic, p.Topic) {
			continue
		}
		kept = append(kept, p)
		if p.Unknown {
			g.Unknown++
			continue
		}
		g.LagRecords += p.LagRecords
		g.MaxLagSeconds = max(g.MaxLagSeconds, p.LagSeconds)
	}
	g.Partitions, g.Members = kept, nonNil(g.Members)
	return g, nil
}

func (c *Console) apiGroups(cl *call) (any, error) {
	gs, err := cl.groups()
	if err != nil {
		return nil, err
	}
	return struct {
		Groups []GroupSummary `json:"groups"`
	}{gs}, nil
}

func (c *Console) apiGroup(cl *call) (any, error) { return cl.group(cl.r.PathValue("group")) }

// resetRequest is the body of POST /api/v1/groups/{group}/reset.
type resetRequest struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions,omitempty"` // none: all
	// To is earliest, latest, offset or time.
	To     string `json:"to"`
	Offset int64  `json:"offset,omitempty"`
	// Time is RFC 3339 or milliseconds since the epoch.
	Time   string `json:"time,omitempty"`
	DryRun bool   `json:"dry_run"`
	// Confirm must be true for a reset that is not a dry run.
	Confirm bool `json:"confirm"`
}

// ResetPlan is what a reset moves (or, in a dry run, would move).
type ResetPlan struct {
	Group       string       `json:"group"`
	Topic       string       `json:"topic"`
	DryRun      bool         `json:"dry_run"`
	LiveMembers int          `json:"live_members"`
	Warning     string       `json:"warning,omitempty"`
	Partitions  []ResetShift `json:"partitions"`
}

// ResetShift is one partition's move.
type ResetShift struct {
	Partition int32 `json:"partition"`
	Current   int64 `json:"current"` // -1: nothing committed
	Target    int64 `json:"target"`
	Delta     int64 `json:"delta"` // records to be read again (>0) or skipped (<0)
}

// parseSpec reads a reset target.
func parseSpec(to string, offset int64, tm string) (broker.ResetSpec, error) {
	switch to {
	case "earliest":
		return broker.ResetSpec{Spec: broker.SpecEarliest}, nil
	case "latest":
		return broker.ResetSpec{Spec: broker.SpecLatest}, nil
	case "offset":
		if offset < 0 {
			return broker.ResetSpec{}, fmt.Errorf("%w: offset %d is negative", ErrBadRequest, offset)
		}
		return broker.ResetSpec{Offset: offset}, nil
	case "time":
		ms, err := parseTime(tm)
		if err != nil {
			return broker.ResetSpec{}, err
		}
		return broker.ResetSpec{Spec: broker.SpecTimestamp, Timestamp: ms}, nil
	}
	return broker.ResetSpec{}, fmt.Errorf("%w: reset to %q: want earliest, latest, offset or time", ErrBadRequest, to)
}

// parseTime reads a time as RFC 3339 (or a date and time without zone,
// taken as UTC, as an HTML datetime-local input sends it) or as
// milliseconds since the epoch.
func parseTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 {
		return ms, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("%w: time %q: want RFC 3339 (2006-01-02T15:04:05Z) or milliseconds since the epoch", ErrBadRequest, s)
}

func (c *Console) apiResetGroup(cl *call) (any, error) {
	group := cl.r.PathValue("group")
	var req resetRequest
	if err := cl.decode(&req); err != nil {
		return nil, err
	}
	// The gRPC service's checks for ResetOffsets.
	if err := cl.require(auth.OpAdmin, auth.ResourceGroup, group); err != nil {
		return nil, err
	}
	if err := cl.require(auth.OpConsume, auth.ResourceTopic, req.Topic); err != nil {
		return nil, err
	}
	spec, err := parseSpec(req.To, req.Offset, req.Time)
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		return cl.resetPlan(group, req, spec)
	}
	if !req.Confirm {
		return nil, fmt.Errorf("%w: a reset rewrites the group's offsets: send \"confirm\": true (or \"dry_run\": true to see the plan)", ErrConfirm)
	}
	before, _ := cl.committed(group, req.Topic)
	offs, err := onCoordinator(cl, func() (map[int32]int64, error) {
		got, err := c.b.ResetOffsets(cl.ctx, group, req.Topic, req.Partitions, spec)
		out := map[int32]int64{}
		for _, o := range got {
			out[o.Partition] = o.Offset
		}
		return out, err
	}, func(s stratav1.StrataClient) (map[int32]int64, error) {
		pr := &stratav1.ResetOffsetsRequest{Group: group, Topic: req.Topic, Partitions: req.Partitions, Offset: spec.Offset,
			TimestampMs: spec.Timestamp, Spec: specProto(spec)}
		resp, err := s.ResetOffsets(cl.ctx, pr)
		if err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		for _, o := range resp.Offsets {
			out[o.Partition] = o.Offset
		}
		return out, nil
	})
	cl.adminChange("reset_offsets", group+" "+req.Topic, err)
	if err != nil {
		return nil, err
	}
	plan := ResetPlan{Group: group, Topic: req.Topic, Partitions: []ResetShift{}}
	for _, p := range sortedParts(offs) {
		cur, ok := before[p]
		if !ok {
			cur = -1
		}
		plan.Partitions = append(plan.Partitions, ResetShift{Partition: p, Current: cur, Target: offs[p], Delta: delta(cur, offs[p])})
	}
	return plan, nil
}

// specProto is the wire form of a reset target.
func specProto(s broker.ResetSpec) stratav1.OffsetSpec {
	switch s.Spec {
	case broker.SpecEarliest:
		return stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST
	case broker.SpecLatest:
		return stratav1.OffsetSpec_OFFSET_SPEC_LATEST
	case broker.SpecTimestamp:
		return stratav1.OffsetSpec_OFFSET_SPEC_TIMESTAMP
	}
	return stratav1.OffsetSpec_OFFSET_SPEC_OFFSET
}

// delta is how many records a move from cur to target reads again.
func delta(cur, target int64) int64 {
	if cur < 0 {
		return 0
	}
	return cur - target
}
