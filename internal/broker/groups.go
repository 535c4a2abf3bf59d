package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
)

// The coordinator keeps stream groups' live membership in memory on the
// metadata leader and their committed offsets in the metadata raft group.
// Assignment is done here, so clients stay thin: a member learns its
// partitions from JoinGroup and from every Heartbeat, and a generation
// number fences commits from members that were reassigned.

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Membership is what a member is told on join and on heartbeat.
type Membership struct {
	MemberID          string
	Generation        int32
	Assignments       []TopicPartition
	HeartbeatInterval time.Duration
}

type member struct {
	id, clientID string
	topics       []string
	session      time.Duration
	deadline     time.Time // monotonic
}

type group struct {
	name       string
	generation int32
	members    map[string]*member
	assigned   map[string][]TopicPartition // member → partitions
	// shape is the topics and partition counts the assignment was made
	// for; a change (a topic created or grown) triggers a rebalance.
	shape string
}

type coordinator struct {
	b      *Broker
	mu     sync.Mutex // guards groups and kafka
	groups map[string]*group
	kafka  map[string]int // live Kafka members per group (kafka_groups.go)
}

func newCoordinator(b *Broker) *coordinator {
	return &coordinator{b: b, groups: map[string]*group{}}
}

func newMemberID(clientID string) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	if clientID == "" {
		clientID = "member"
	}
	return clientID + "-" + hex.EncodeToString(r[:])
}

// JoinGroup adds or renews a member and returns its assignment.
func (b *Broker) JoinGroup(groupName, memberID, clientID string, topics []string, session time.Duration) (Membership, error) {
	if err := ValidName("group", groupName); err != nil {
		return Membership{}, err
	}
	if len(topics) == 0 {
		return Membership{}, fmt.Errorf("%w: a member must subscribe to at least one topic", ErrInvalidRequest)
	}
	// The coordinator is the metadata leader, whose view of the topics is
	// the reference: a follower names it instead of answering from a view
	// that may lag (a topic just created).
	if !b.node.Meta.IsLeader() {
		return Membership{}, b.notLeader(b.node.Meta, "group coordinator")
	}
	for _, t := range topics {
		if _, err := b.knownTopic(t); err != nil {
			return Membership{}, err
		}
	}
	if session <= 0 {
		session = b.cfg.DefaultSessionTimeout
	}
	session = min(max(session, time.Second), 5*time.Minute)
	c := b.coord
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.kafkaConflictLocked(groupName); err != nil {
		return Membership{}, err
	}
	g := c.groupLocked(groupName)
	m := g.members[memberID]
	if m == nil {
		// A new member, or one the group forgot (its session expired):
		// either way it gets a fresh id.
		m = &member{id: newMemberID(clientID), clientID: clientID}
		g.members[m.id] = m
		g.shape = "" // force a rebalance
	}
	sorted := slices.Sorted(slices.Values(topics))
	if !slices.Equal(sorted, m.topics) {
		m.topics = slices.Compact(sorted)
		g.shape = ""
	}
	m.session = session
	m.deadline = time.Now().Add(session)
	c.maybeRebalanceLocked(g)
	return g.membership(m.id, session), nil
}

func (g *group) membership(id string, session time.Duration) Membership {
	return Membership{
		MemberID:          id,
		Generation:        g.generation,
		Assignments:       slices.Clone(g.assigned[id]),
		HeartbeatInterval: session / 3,
	}
}

// Heartbeat renews a member's session and returns the current generation
// and its assignment.
func (b *Broker) Heartbeat(groupName, memberID string, generation int32) (Membership, error) {
	if !b.node.Meta.IsLeader() {
		return Membership{}, b.notLeader(b.node.Meta, "group coordinator")
	}
	c := b.coord
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[groupName]
	if g == nil || g.members[memberID] == nil {
		return Membership{}, fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, groupName)
	}
	m := g.members[memberID]
	m.deadline = time.Now().Add(m.session)
	c.maybeRebalanceLocked(g)
	return g.membership(memberID, m.session), nil
}

// LeaveGroup removes a member; its partitions go to the others at once.
func (b *Broker) LeaveGroup(groupName, memberID string) error {
	c := b.coord
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[groupName]
	if g == nil || g.members[memberID] == nil {
		return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, groupName)
	}
	delete(g.members, memberID)
	g.shape = ""
	c.maybeRebalanceLocked(g)
	return nil
}

// groupLocked returns the group, creating it. Caller must hold c.mu.
func (c *coordinator) groupLocked(name string) *group {
	g := c.groups[name]
	if g == nil {
		g = &group{name: name, members: map[string]*member{}, assigned: map[string][]TopicPartition{}}
		c.groups[name] = g
	}
	return g
}

// maybeRebalanceLocked recomputes the assignment when the members or the
// partitions of their topics changed. Caller must hold c.mu.
func (c *coordinator) maybeRebalanceLocked(g *group) {
	topics := map[string]int{}
	for _, m := range g.members {
		for _, t := range m.topics {
			if tp, err := c.b.knownTopic(t); err == nil {
				topics[t] = len(tp.Partitions)
			}
		}
	}
	ids := slices.Sorted(maps.Keys(g.members))
	shape := fmt.Sprint(ids, topics)
	if shape == g.shape {
		return
	}
	g.shape = shape
	g.generation++
	g.assigned = assign(g.members, ids, topics)
}

// assign spreads each topic's partitions over the members subscribed to
// it, round robin in a fixed order, so the assignment is deterministic.
func assign(members map[string]*member, ids []string, topics map[string]int) map[string][]TopicPartition {
	out := map[string][]TopicPartition{}
	for _, t := range slices.Sorted(maps.Keys(topics)) {
		var subs []string
		for _, id := range ids {
			if slices.Contains(members[id].topics, t) {
				subs = append(subs, id)
			}
		}
		if len(subs) == 0 {
			continue
		}
		for p := 0; p < topics[t]; p++ {
			id := subs[p%len(subs)]
			out[id] = append(out[id], TopicPartition{Topic: t, Partition: int32(p)})
		}
	}
	return out
}

// sessionLoop expires members whose session ran out and rebalances groups
// whose topics changed shape.
func (c *coordinator) sessionLoop(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			c.mu.Lock()
			for _, g := range c.groups {
				for id, m := range g.members {
					if now.After(m.deadline) {
						delete(g.members, id)
						g.shape = ""
						c.b.log.Info("group member expired", "group", g.name, "member", id)
					}
				}
				if len(g.members) > 0 {
					c.maybeRebalanceLocked(g)
				}
			}
			c.mu.Unlock()
		}
	}
}

// liveMembers returns the number of members of a group.
func (c *coordinator) liveMembers(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.groups[name]; g != nil {
		return len(g.members) + c.kafka[name]
	}
	return c.kafka[name]
}

// CommitOffsets stores a group's offsets (the next offset to consume). A
// member commits with its id and current generation; a standalone
// consumer passes neither and may commit only while the group is empty.
// Offsets never move backwards through a commit.
func (b *Broker) CommitOffsets(ctx context.Context, groupName, memberID string, generation int32, offs []topic.PartitionOffset) error {
	if err := ValidName("group", groupName); err != nil {
		return err
	}
	// Only the coordinator (the metadata leader) knows the members, and
	// its view of the topics is the reference: a follower names it.
	if !b.node.Meta.IsLeader() {
		return b.notLeader(b.node.Meta, "group coordinator")
	}
	for _, o := range offs {
		t, err := b.knownTopic(o.Topic)
		if err != nil {
			return err
		}
		if o.Partition < 0 || int(o.Partition) >= len(t.Partitions) {
			return fmt.Errorf("%w: %s/%d", topic.ErrUnknownPartition, o.Topic, o.Partition)
		}
		if o.Offset < 0 {
			return fmt.Errorf("%w: commit of offset %d for %s/%d", ErrInvalidRequest, o.Offset, o.Topic, o.Partition)
		}
	}
	c := b.coord
	c.mu.Lock()
	g := c.groups[groupName]
	switch {
	case memberID == "" && g != nil && len(g.members) > 0:
		c.mu.Unlock()
		return fmt.Errorf("%w: %q has %d members; commit as a member", ErrGroupNotEmpty, groupName, len(g.members))
	case memberID != "" && (g == nil || g.members[memberID] == nil):
		c.mu.Unlock()
		return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, groupName)
	case memberID != "" && generation != g.generation:
		c.mu.Unlock()
		return fmt.Errorf("%w: commit from generation %d, group %q is at %d", ErrStaleGeneration, generation, groupName, g.generation)
	}
	c.mu.Unlock()
	_, err := b.applyMeta(ctx, cluster.CommitOffsetsCmd(groupName, offs, false))
	return mapClusterErr(err)
}

// FetchOffsets returns a group's committed offsets (-1 where none).
func (b *Broker) FetchOffsets(groupName string, parts []TopicPartition) []topic.PartitionOffset {
	if len(parts) == 0 {
		var out []topic.PartitionOffset
		for t, ps := range b.node.MetaFSM.GroupOffsets(groupName) {
			for p, off := range ps {
				out = append(out, topic.PartitionOffset{Topic: t, Partition: p, Offset: off})
			}
		}
		sortOffsets(out)
		return out
	}
	out := make([]topic.PartitionOffset, len(parts))
	for i, tp := range parts {
		out[i] = topic.PartitionOffset{Topic: tp.Topic, Partition: tp.Partition,
			Offset: b.node.MetaFSM.CommittedOffset(groupName, tp.Topic, tp.Partition)}
	}
	return out
}

func sortOffsets(o []topic.PartitionOffset) {
	sort.Slice(o, func(i, j int) bool {
		if o[i].Topic != o[j].Topic {
			return o[i].Topic < o[j].Topic
		}
		return o[i].Partition < o[j].Partition
	})
}

// GroupSummary is one line of ListGroups.
type GroupSummary struct {
	Name    string
	State   string
	Members int
}

// ListGroups lists groups with live members or committed offsets.
func (b *Broker) ListGroups() []GroupSummary {
	names := map[string]bool{}
	for _, n := range b.node.MetaFSM.GroupNames() {
		names[n] = true
	}
	b.coord.mu.Lock()
	for n, g := range b.coord.groups {
		if len(g.members) > 0 {
			names[n] = true
		}
	}
	b.coord.mu.Unlock()
	var out []GroupSummary
	for _, n := range slices.Sorted(maps.Keys(names)) {
		m := b.coord.liveMembers(n)
		out = append(out, GroupSummary{Name: n, State: groupState(m), Members: m})
	}
	return out
}

func groupState(members int) string {
	if members > 0 {
		return "stable"
	}
	return "empty"
}
