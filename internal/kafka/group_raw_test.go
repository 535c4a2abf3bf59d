package kafka_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/kafka"
)

// pinned returns a client that sends API key at most at version v (kgo
// otherwise uses the highest version both sides know).
func pinned(t *testing.T, key, v int16) *kgo.Client {
	t.Helper()
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(key, v)
	return newClient(t, kgo.MaxVersions(vs))
}

// rawJoin sends a JoinGroup at the client's version (5 unless pinned).
func rawJoin(t *testing.T, cl *kgo.Client, group, member, ptype string, session int32) *kmsg.JoinGroupResponse {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID, req.ProtocolType = group, member, ptype
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = session, 3000
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte("meta-"+member)
	req.Protocols = append(req.Protocols, p)
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func rawSync(t *testing.T, cl *kgo.Client, group, member string, gen int32, assign map[string]string) *kmsg.SyncGroupResponse {
	t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	for m, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = m, []byte(a)
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func rawHeartbeat(t *testing.T, cl *kgo.Client, group, member string, gen int32) error {
	t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

func rawDescribe(t *testing.T, cl *kgo.Client, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Groups[0]
}

func wantErr(t *testing.T, what string, code int16, want *kerr.Error) {
	t.Helper()
	if got := kerr.ErrorForCode(code); !errors.Is(got, want) && !(got == nil && want == nil) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// TestGroupProtocolRaw walks the group protocol by hand: member id
// required, the barrier with a second member, leader election, opaque
// metadata and assignments, REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION,
// UNKNOWN_MEMBER_ID, INCONSISTENT_GROUP_PROTOCOL, commits fenced by
// generation, a dynamic member's session expiring, and leave.
func TestGroupProtocolRaw(t *testing.T) {
	const group = "g-raw"
	newTopic(t, "raw", 1)
	cl, cl3 := newClient(t), pinned(t, 11, 3)

	j := rawJoin(t, cl, group, "", "consumer", 30000)
	wantErr(t, "first v5 join", j.ErrorCode, kerr.MemberIDRequired)
	m1 := j.MemberID
	j = rawJoin(t, cl, group, m1, "consumer", 30000)
	wantErr(t, "rejoin with id", j.ErrorCode, nil)
	if j.LeaderID != m1 || j.Generation != 1 || *j.Protocol != "range" || len(j.Members) != 1 || string(j.Members[0].ProtocolMetadata) != "meta-"+m1 {
		t.Fatalf("join: %+v", j)
	}
	s := rawSync(t, cl, group, m1, 1, map[string]string{m1: "a1"})
	wantErr(t, "sync", s.ErrorCode, nil)
	if string(s.MemberAssignment) != "a1" {
		t.Fatalf("assignment %q", s.MemberAssignment)
	}
	if err := rawHeartbeat(t, cl, group, m1, 0); !errors.Is(err, kerr.IllegalGeneration) {
		t.Fatalf("heartbeat old generation: %v", err)
	}
	if err := rawHeartbeat(t, cl, group, "nobody", 1); !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatalf("heartbeat unknown member: %v", err)
	}
	j = rawJoin(t, cl3, group, "", "connect", 30000)
	wantErr(t, "join with another protocol type", j.ErrorCode, kerr.InconsistentGroupProtocol)

	// A second member (v3: no member id round trip) waits for the first
	// to rejoin; the first learns of the rebalance from its heartbeat.
	cl2 := pinned(t, 11, 3)
	joined := make(chan *kmsg.JoinGroupResponse, 1)
	go func() {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.ProtocolType, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = group, "consumer", 1500, 3000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte("meta-2")
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctxT(t), cl2)
		if err != nil {
			resp = nil
		}
		joined <- resp
	}()
	wait.For(t, 10*time.Second, "heartbeat REBALANCE_IN_PROGRESS", func() bool {
		return errors.Is(rawHeartbeat(t, cl, group, m1, 1), kerr.RebalanceInProgress)
	})
	if d := rawDescribe(t, cl, group); d.State != "PreparingRebalance" {
		t.Fatalf("state %s", d.State)
	}
	j = rawJoin(t, cl, group, m1, "consumer", 30000)
	j2 := <-joined
	if j2 == nil {
		t.Fatal("second join failed")
	}
	wantErr(t, "leader rejoin", j.ErrorCode, nil)
	wantErr(t, "second join", j2.ErrorCode, nil)
	m2 := j2.MemberID
	if j.Generation != 2 || j2.Generation != 2 || j.LeaderID != m1 || j2.LeaderID != m1 || len(j.Members) != 2 || len(j2.Members) != 0 {
		t.Fatalf("generation 2: leader %+v follower %+v", j, j2)
	}
	if d := rawDescribe(t, cl, group); d.State != "CompletingRebalance" {
		t.Fatalf("state %s", d.State)
	}
	synced := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { synced <- rawSync(t, cl2, group, m2, 2, nil) }()
	s = rawSync(t, cl, group, m1, 2, map[string]string{m1: "a1", m2: "a2"})
	s2 := <-synced
	if s.ErrorCode != 0 || s2.ErrorCode != 0 || string(s.MemberAssignment) != "a1" || string(s2.MemberAssignment) != "a2" {
		t.Fatalf("syncs: %+v %+v", s, s2)
	}
	d := rawDescribe(t, cl, group)
	if d.State != "Stable" || len(d.Members) != 2 || d.Protocol != "range" {
		t.Fatalf("describe %+v", d)
	}

	// Commits are fenced by generation.
	commit := func(gen int32, member string) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation, req.MemberID = group, gen, member
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "raw"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Offset = 1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctxT(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	wantErr(t, "commit old generation", commit(1, m1), kerr.IllegalGeneration)
	wantErr(t, "commit unknown member", commit(2, "nobody"), kerr.UnknownMemberID)
	wantErr(t, "simple commit to a live group", commit(-1, ""), kerr.UnknownMemberID)
	wantErr(t, "commit", commit(2, m1), nil)

	// The second member stops heartbeating: its 1.5 s session expires,
	// the first is told to rejoin and is alone in generation 3.
	wait.For(t, 10*time.Second, "rebalance after expiry", func() bool {
		return errors.Is(rawHeartbeat(t, cl, group, m1, 2), kerr.RebalanceInProgress)
	})
	j = rawJoin(t, cl, group, m1, "consumer", 30000)
	if j.ErrorCode != 0 || j.Generation != 3 || len(j.Members) != 1 {
		t.Fatalf("join after expiry: %+v", j)
	}
	if err := rawHeartbeat(t, cl2, group, m2, 2); !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatalf("expired member's heartbeat: %v", err)
	}

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = group, m1
	lr, err := leave.RequestWith(ctxT(t), cl)
	if err != nil || lr.ErrorCode != 0 {
		t.Fatalf("leave: %v %v", err, lr)
	}
	if d := rawDescribe(t, cl, group); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after leave %+v", d)
	}
	if d := rawDescribe(t, cl, "never-seen"); d.State != "Dead" {
		t.Fatalf("unknown group %+v", d)
	}
}

// TestGroupFindCoordinator: the node coordinates every group.
func TestGroupFindCoordinator(t *testing.T) {
	for _, v := range []int16{0, 1, 2} {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = "any-group"
		resp, err := req.RequestWith(ctxT(t), pinned(t, 10, v))
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 || resp.NodeID != kafkaNodeID() || resp.Host == "" || resp.Port == 0 {
			t.Fatalf("v%d: %+v", v, resp)
		}
	}
}

// TestGroupNativeMix: a group name has members of one kind at a time.
func TestGroupNativeMix(t *testing.T) {
	newTopic(t, "mix", 1)
	cl3 := pinned(t, 11, 3)
	b := node.Broker()

	// Native first: Kafka members are refused.
	nm, err := b.JoinGroup("g-mix-native", "", "native", []string{"mix"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	j := rawJoin(t, cl3, "g-mix-native", "", "consumer", 30000)
	wantErr(t, "Kafka join of a native group", j.ErrorCode, kerr.InconsistentGroupProtocol)
	if err := b.LeaveGroup("g-mix-native", nm.MemberID); err != nil {
		t.Fatal(err)
	}
	j = rawJoin(t, cl3, "g-mix-native", "", "consumer", 30000)
	wantErr(t, "Kafka join once the native member left", j.ErrorCode, nil)

	// Kafka first: native members are refused until it leaves.
	if _, err := b.JoinGroup("g-mix-native", "", "native", []string{"mix"}, 10*time.Second); !errors.Is(err, broker.ErrGroupNotEmpty) {
		t.Fatalf("native join of a Kafka group: %v", err)
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "g-mix-native", j.MemberID
	if _, err := leave.RequestWith(ctxT(t), cl3); err != nil {
		t.Fatal(err)
	}
	nm, err = b.JoinGroup("g-mix-native", "", "native", []string{"mix"}, 10*time.Second)
	if err != nil {
		t.Fatalf("native join once the Kafka member left: %v", err)
	}
	_ = b.LeaveGroup("g-mix-native", nm.MemberID)
}

func kafkaNodeID() int32 { return kafka.NodeID32("k1") }
