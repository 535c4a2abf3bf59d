package kafka_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// newTopic creates a topic on the node.
func newTopic(t *testing.T, name string, partitions int32) {
	t.Helper()
	if _, err := node.Broker().CreateTopic(ctxT(t), name, topic.Config{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

// owner tracks the partitions a group consumer owns, from its callbacks.
type owner struct {
	mu    sync.Mutex
	parts map[int32]bool
}

func (o *owner) owned() []int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(maps.Keys(o.parts))
}

func (o *owner) update(add bool, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range m {
		for _, p := range ps {
			if add {
				o.parts[p] = true
			} else {
				delete(o.parts, p)
			}
		}
	}
}

// groupConsumer starts a kgo group member with short timeouts.
func groupConsumer(t *testing.T, group, topic string, bal kgo.GroupBalancer, extra ...kgo.Opt) (*kgo.Client, *owner) {
	t.Helper()
	o := &owner{parts: map[int32]bool{}}
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.Balancers(bal),
		kgo.SessionTimeout(1500 * time.Millisecond), kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second), kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.update(true, m) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.update(false, m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.update(false, m) }),
	}, extra...)
	return newClient(t, opts...), o
}

// split reports whether a and b own disjoint halves of n partitions.
func split(a, b *owner, n int) bool {
	oa, ob := a.owned(), b.owned()
	if len(oa) != n/2 || len(ob) != n/2 {
		return false
	}
	for _, p := range oa {
		if slices.Contains(ob, p) {
			return false
		}
	}
	return true
}

// TestGroupAssignors: with each client-side assignor, two members split a
// 4-partition topic; when one leaves the other gets all four; a member's
// commit (with its generation) lands in the broker's committed offsets.
func TestGroupAssignors(t *testing.T) {
	for _, tc := range []struct {
		name string
		bal  kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer()},
		{"roundrobin", kgo.RoundRobinBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := "assign-"+tc.name, "g-"+tc.name
			newTopic(t, topic, 4)
			c1, o1 := groupConsumer(t, group, topic, tc.bal)
			wait.For(t, 20*time.Second, "first member owns all", func() bool { return len(o1.owned()) == 4 })
			c2, o2 := groupConsumer(t, group, topic, tc.bal)
			wait.For(t, 20*time.Second, "two members split", func() bool { return split(o1, o2, 4) })

			adm := kadm.NewClient(newClient(t))
			dg, err := adm.DescribeGroups(ctxT(t), group)
			if err != nil {
				t.Fatal(err)
			}
			d := dg[group]
			if d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != tc.name || len(d.Members) != 2 {
				t.Fatalf("describe: state %s type %s protocol %s members %d", d.State, d.ProtocolType, d.Protocol, len(d.Members))
			}

			c2.Close() // leaves the group
			wait.For(t, 20*time.Second, "remaining member owns all", func() bool { return len(o1.owned()) == 4 })

			offs := map[string]map[int32]kgo.EpochOffset{topic: {}}
			for p := range int32(4) {
				offs[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: int64(10 + p)}
			}
			var commitErr error
			c1.CommitOffsetsSync(ctxT(t), offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				commitErr = commitError(resp, err)
			})
			if commitErr != nil {
				t.Fatal(commitErr)
			}
			got := node.Broker().FetchOffsets(group, nil)
			if len(got) != 4 || got[3].Offset != 13 {
				t.Fatalf("broker offsets %+v", got)
			}
		})
	}
}

// TestGroupSessionExpiry: a static member that closes without leaving (a
// static kgo member does not leave) is removed when its session expires,
// and the other member gets its partitions.
func TestGroupSessionExpiry(t *testing.T) {
	topic, group := "expiry", "g-expiry"
	newTopic(t, topic, 4)
	_, o1 := groupConsumer(t, group, topic, kgo.RangeBalancer())
	wait.For(t, 20*time.Second, "first member owns all", func() bool { return len(o1.owned()) == 4 })
	c2, o2 := groupConsumer(t, group, topic, kgo.RangeBalancer(), kgo.InstanceID("static-2"))
	wait.For(t, 20*time.Second, "two members split", func() bool { return split(o1, o2, 4) })
	start := time.Now()
	c2.Close()
	wait.For(t, 20*time.Second, "remaining member owns all", func() bool { return len(o1.owned()) == 4 })
	if el := time.Since(start); el < time.Second {
		t.Fatalf("partitions moved after %v, before the 1.5 s session could expire (did the static member leave?)", el)
	}
}

// TestGroupOffsets: offsets committed through Kafka are the broker's (the
// ones `strata group describe` shows), with metadata strings, and a
// later commit may move an offset back (last write wins).
func TestGroupOffsets(t *testing.T) {
	topic, group := "offsets", "g-offsets"
	newTopic(t, topic, 2)
	adm := kadm.NewClient(newClient(t))
	commit := func(p0, p1 int64) {
		t.Helper()
		var offs kadm.Offsets
		offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: p0, LeaderEpoch: -1, Metadata: "m0"})
		offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: p1, LeaderEpoch: -1})
		resp, err := adm.CommitOffsets(ctxT(t), group, offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	commit(5, 7)
	commit(3, 7) // backwards
	fetched, err := adm.FetchOffsets(ctxT(t), group)
	if err != nil {
		t.Fatal(err)
	}
	if err := fetched.Error(); err != nil {
		t.Fatal(err)
	}
	r0, _ := fetched.Lookup(topic, 0)
	r1, _ := fetched.Lookup(topic, 1)
	if r0.At != 3 || r0.Metadata != "m0" || r1.At != 7 {
		t.Fatalf("kadm offsets p0 %+v p1 %+v", r0.Offset, r1.Offset)
	}
	desc, err := node.Broker().DescribeGroup(ctxT(t), group)
	if err != nil {
		t.Fatal(err)
	}
	var committed []int64
	for _, p := range desc.Partitions {
		committed = append(committed, p.Committed)
	}
	if !slices.Equal(committed, []int64{3, 7}) {
		t.Fatalf("broker describe: %+v", desc.Partitions)
	}
	// A reset through the broker (`strata group reset`) is what Kafka
	// clients fetch next.
	if _, err := node.Broker().ResetOffsets(ctxT(t), group, topic, nil, broker.ResetSpec{Offset: 0}); err != nil {
		t.Fatal(err)
	}
	fetched, err = adm.FetchOffsets(ctxT(t), group)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := fetched.Lookup(topic, 1); r.At != 0 {
		t.Fatalf("after reset p1 at %d", r.At)
	}
	lg, err := adm.ListGroups(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lg[group]; !ok {
		t.Fatalf("ListGroups %v lacks %s", lg.Groups(), group)
	}
}

// commitError returns a commit's error or its first partition error.
func commitError(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}
