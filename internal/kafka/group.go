package kafka

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/broker"
)

// The classic Kafka group protocol (JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup) is coordinated here, on the node that leads the metadata
// (the native groups' coordinator too). Membership lives in memory, as in
// Kafka's coordinator before it writes to __consumer_offsets: a new
// coordinator (after a failover) starts with no members, and clients,
// answered UNKNOWN_MEMBER_ID, join again. Committed offsets are the
// broker's (the metadata raft group), shared with `strata group`.
//
// A group moves Empty → PreparingRebalance (a member joined, left, changed
// its metadata or expired: every known member must rejoin within the
// largest rebalance timeout, those that do not are removed) →
// CompletingRebalance (every joined member has its JoinGroup answer; the
// leader sends the assignment in its SyncGroup) → Stable. Assignment is
// the clients' (range, roundrobin, cooperative-sticky): the coordinator
// only carries the leader's opaque bytes to each member.
//
// Each group has a mutex; the coordinator's mutex guards only the map of
// groups. Lock order: coordinator.mu, then group.mu, then the broker's
// (SetKafkaGroupMembers). Nothing blocks under a group's mutex: JoinGroup
// and SyncGroup register a channel and wait on it in their finish step.

// Session timeout bounds (Kafka's group.min/max.session.timeout.ms). The
// minimum is lower than Kafka's 6 s default so fast failure detection
// (and fast tests) are possible.
const (
	minSessionTimeout = time.Second
	maxSessionTimeout = 30 * time.Minute
	// maxOffsetMetadata is Kafka's offset.metadata.max.bytes.
	maxOffsetMetadata = 4096
)

// groupState is a Kafka group state, named as DescribeGroups names it.
type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

func (s groupState) String() string {
	switch s {
	case groupPreparingRebalance:
		return "PreparingRebalance"
	case groupCompletingRebalance:
		return "CompletingRebalance"
	case groupStable:
		return "Stable"
	case groupDead:
		return "Dead"
	}
	return "Empty"
}

// emptyConsumerAssignment is what a member of a "consumer" group gets when
// the leader assigned it nothing: some clients cannot decode zero bytes.
var emptyConsumerAssignment = new(kmsg.ConsumerMemberAssignment).AppendTo(nil)

// coordinator is one server's set of Kafka groups.
type coordinator struct {
	s      *Server
	mu     sync.Mutex // guards groups
	groups map[string]*group
}

// groups returns the server's coordinator.
func (s *Server) groups() *coordinator { return s.coord }

// close stops every timer and answers every waiting request.
func (c *coordinator) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.groups {
		g.mu.Lock()
		for _, m := range g.members {
			g.dropMemberLocked(m, kerr.NotCoordinator.Code)
		}
		g.stopTimer(&g.rebalanceTimer)
		g.stopTimer(&g.syncTimer)
		g.state = groupDead
		g.syncClaimLocked()
		g.mu.Unlock()
	}
}

// get returns a group, or nil.
func (c *coordinator) get(name string) *group {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups[name]
}

// getOrCreate returns a group, creating it Empty.
func (c *coordinator) getOrCreate(name string) *group {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[name]
	if g == nil {
		g = &group{c: c, name: name, members: map[string]*member{}, pending: map[string]*member{},
			static: map[string]string{}, meta: map[string]map[int32]string{}}
		c.groups[name] = g
	}
	return g
}

// list returns the groups, in no order.
func (c *coordinator) list() []*group {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		out = append(out, g)
	}
	return out
}

// group is one Kafka consumer group.
type group struct {
	c    *coordinator
	name string

	mu           sync.Mutex // guards everything below
	state        groupState
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	pending      map[string]*member // told MEMBER_ID_REQUIRED, not joined yet
	static       map[string]string  // group instance id → member id
	seq          uint64             // join order, for leader election
	pendingSync  map[string]bool    // members that have their join answer but not synced
	// rebalanceTimer ends PreparingRebalance; syncTimer ends a
	// CompletingRebalance whose members do not all sync.
	rebalanceTimer, syncTimer *time.Timer
	// meta are the metadata strings of committed offsets, kept in memory
	// by the coordinator (lost on failover; the offsets are not).
	meta map[string]map[int32]string
	// claimed is the live member count last told to the broker.
	claimed int
}

// member is one member of a group.
type member struct {
	id           string
	instance     *string
	clientID     string
	host         string
	protocolType string
	protocols    []kmsg.JoinGroupRequestProtocol
	session      time.Duration
	rebalance    time.Duration
	seq          uint64
	assignment   []byte
	timer        *time.Timer // session expiry

	// A JoinGroup or SyncGroup waiting for the barrier: its request (for
	// the response's version) and where its answer goes.
	joinReq *kmsg.JoinGroupRequest
	joinCh  chan kmsg.Response
	syncReq *kmsg.SyncGroupRequest
	syncCh  chan kmsg.Response
}

func newMemberID(clientID string, instance *string) string {
	var r [16]byte
	_, _ = rand.Read(r[:])
	prefix := clientID
	if instance != nil {
		prefix = *instance
	}
	if prefix == "" {
		prefix = "member"
	}
	return prefix + "-" + hex.EncodeToString(r[:])
}

// clientHost formats a connection's peer as Kafka does ("/1.2.3.4").
func clientHost(r *request) string {
	host, _, err := net.SplitHostPort(r.c.nc.RemoteAddr().String())
	if err != nil {
		return "/" + r.c.nc.RemoteAddr().String()
	}
	return "/" + host
}

// await is the finish of a JoinGroup or SyncGroup: the answer the group
// sends on ch, or fallback (NOT_COORDINATOR) if the server closes first.
func (s *Server) await(ch <-chan kmsg.Response, fallback kmsg.Response) finish {
	return func() kmsg.Response {
		select {
		case resp := <-ch:
			return resp
		case <-s.ctx.Done():
			return fallback
		}
	}
}

// coordinatorCode is 0 when this node coordinates groups, else the error
// that sends a client to FindCoordinator.
func (s *Server) coordinatorCode() int16 {
	id, local := s.b.GroupCoordinator()
	switch {
	case local:
		return 0
	case id == "":
		return kerr.CoordinatorNotAvailable.Code
	}
	return kerr.NotCoordinator.Code
}

// groupErrorCode maps a broker error on a group operation.
func groupErrorCode(err error) int16 {
	var nl *broker.NotLeaderError
	switch {
	case errors.As(err, &nl):
		if nl.LeaderID == "" {
			return kerr.CoordinatorNotAvailable.Code
		}
		return kerr.NotCoordinator.Code
	case errors.Is(err, broker.ErrGroupNotEmpty):
		return kerr.InconsistentGroupProtocol.Code
	case errors.Is(err, broker.ErrInvalidName):
		return kerr.InvalidGroupID.Code
	}
	return errorCode(err)
}

// after arms *slot to run fn under g.mu after d, replacing what it held;
// a timer stopped or replaced meanwhile does nothing.
func (g *group) after(d time.Duration, slot **time.Timer, fn func()) {
	g.stopTimer(slot)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if *slot != t || g.c.s.ctx.Err() != nil {
			return
		}
		*slot = nil
		fn()
		g.syncClaimLocked()
	})
	*slot = t
}

func (g *group) stopTimer(slot **time.Timer) {
	if *slot != nil {
		(*slot).Stop()
		*slot = nil
	}
}

// claimLocked tells the broker the group has live Kafka members before
// the first one is added; it fails while native members are live.
// Caller must hold g.mu.
func (g *group) claimLocked() error {
	if g.claimed > 0 {
		return nil
	}
	if err := g.c.s.b.SetKafkaGroupMembers(g.name, 1); err != nil {
		return err
	}
	g.claimed = 1
	return nil
}

// syncClaimLocked tells the broker the live member count after a change.
// Caller must hold g.mu.
func (g *group) syncClaimLocked() {
	n := len(g.members) + len(g.pending)
	if g.state == groupDead {
		n = 0
	}
	if n != g.claimed && g.claimed > 0 {
		_ = g.c.s.b.SetKafkaGroupMembers(g.name, n) // n > 0 cannot fail: the group was claimed
		g.claimed = n
	}
}

// heartbeatLocked renews a member's session. A member waiting in a join
// or a sync is kept alive: the rebalance and sync timers bound those.
// Caller must hold g.mu.
func (g *group) heartbeatLocked(m *member) {
	g.after(m.session, &m.timer, func() {
		if g.members[m.id] != m {
			return
		}
		if m.joinCh != nil || m.syncCh != nil {
			g.heartbeatLocked(m)
			return
		}
		g.c.s.log.Info("kafka group member expired", "group", g.name, "member", m.id)
		g.dropMemberLocked(m, kerr.UnknownMemberID.Code)
		g.rebalanceLocked()
	})
}

// dropMemberLocked removes a member without a rebalance; a request it has
// waiting is answered with code. Caller must hold g.mu.
func (g *group) dropMemberLocked(m *member, code int16) {
	g.stopTimer(&m.timer)
	g.replyJoinErrLocked(m, code)
	g.replySyncLocked(m, code, nil)
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instance != nil && g.static[*m.instance] == m.id {
		delete(g.static, *m.instance)
	}
	if g.leader == m.id {
		g.leader = ""
	}
}

// rebalanceLocked starts (or continues) a rebalance: every member must
// rejoin. It completes at once when all have. Caller must hold g.mu.
func (g *group) rebalanceLocked() {
	if g.state == groupCompletingRebalance {
		for _, m := range g.members {
			g.replySyncLocked(m, kerr.RebalanceInProgress.Code, nil)
		}
	}
	g.stopTimer(&g.syncTimer)
	g.pendingSync = nil
	if g.state != groupPreparingRebalance {
		g.state = groupPreparingRebalance
		g.after(g.maxRebalanceLocked(), &g.rebalanceTimer, g.completeRebalanceLocked)
	}
	for _, m := range g.members {
		if m.joinCh == nil {
			return
		}
	}
	g.completeRebalanceLocked()
}

func (g *group) maxRebalanceLocked() time.Duration {
	d := time.Duration(0)
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// completeRebalanceLocked removes the members that did not rejoin, starts
// a new generation, picks the protocol and the leader, and answers every
// join. Caller must hold g.mu.
func (g *group) completeRebalanceLocked() {
	g.stopTimer(&g.rebalanceTimer)
	for _, m := range g.members {
		if m.joinCh == nil {
			g.dropMemberLocked(m, kerr.UnknownMemberID.Code)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = groupEmpty, "", ""
		return
	}
	g.state = groupCompletingRebalance
	g.protocol = g.selectProtocolLocked()
	if g.members[g.leader] == nil {
		g.leader = ""
		for _, m := range g.members {
			if g.leader == "" || m.seq < g.members[g.leader].seq {
				g.leader = m.id
			}
		}
	}
	g.pendingSync = map[string]bool{}
	for _, m := range g.members {
		g.pendingSync[m.id] = true
		resp := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
		g.fillJoinLocked(resp, m.id)
		m.joinCh <- resp
		m.joinCh, m.joinReq = nil, nil
		g.heartbeatLocked(m)
	}
	g.after(g.maxRebalanceLocked(), &g.syncTimer, func() {
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				g.dropMemberLocked(m, kerr.UnknownMemberID.Code)
			}
		}
		g.rebalanceLocked()
	})
}

// selectProtocolLocked picks, among the protocols every member supports,
// the one most members prefer (ties: the earliest joiner's preference).
// Caller must hold g.mu.
func (g *group) selectProtocolLocked() string {
	support := map[string]int{}
	var first *member
	for _, m := range g.members {
		for _, p := range m.protocols {
			support[p.Name]++
		}
		if first == nil || m.seq < first.seq {
			first = m
		}
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if support[p.Name] == len(g.members) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, p := range first.protocols {
		if support[p.Name] == len(g.members) && (best == "" || votes[p.Name] > votes[best]) {
			best = p.Name
		}
	}
	return best
}

// fillJoinLocked fills a join answer; the leader gets every member's
// metadata for the chosen protocol. Caller must hold g.mu.
func (g *group) fillJoinLocked(resp *kmsg.JoinGroupResponse, id string) {
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = id
	if id != g.leader {
		return
	}
	for _, m := range g.members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = m.id, m.instance, m.metadata(g.protocol)
		resp.Members = append(resp.Members, jm)
	}
}

// metadata returns the member's metadata for a protocol.
func (m *member) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// sameProtocols reports whether a join repeats the member's protocols.
func (m *member) sameProtocols(ps []kmsg.JoinGroupRequestProtocol) bool {
	if len(ps) != len(m.protocols) {
		return false
	}
	for i, p := range ps {
		if p.Name != m.protocols[i].Name || !bytes.Equal(p.Metadata, m.protocols[i].Metadata) {
			return false
		}
	}
	return true
}

// replyJoinErrLocked answers a waiting join with an error. Caller must
// hold g.mu.
func (g *group) replyJoinErrLocked(m *member, code int16) {
	if m.joinCh == nil {
		return
	}
	resp := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode, resp.MemberID, resp.Generation = code, m.id, -1
	m.joinCh <- resp
	m.joinCh, m.joinReq = nil, nil
}

// replySyncLocked answers a waiting sync with an error or an assignment.
// Caller must hold g.mu.
func (g *group) replySyncLocked(m *member, code int16, assignment []byte) {
	if m.syncCh == nil {
		return
	}
	resp := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.ErrorCode = code
	if code == 0 {
		resp.MemberAssignment = assignment
	}
	m.syncCh <- resp
	m.syncCh, m.syncReq = nil, nil
}

// assignmentFor returns what a member gets from the leader's assignment.
func (g *group) assignmentFor(a []byte) []byte {
	if len(a) == 0 && g.protocolType == "consumer" {
		return emptyConsumerAssignment
	}
	return a
}
