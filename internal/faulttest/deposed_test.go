package faulttest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/internal/broker"
)

// A leader cut off from the others is deposed, but its replica ends where
// it was cut off. A fetch there of an offset the new leader has since
// committed must not be answered out of range (a consumer would reset to
// the start or the end): it is NotLeader, so the client asks the leader.
// Without the check before out of range (broker.confirmPastEnd) the
// deposed replica answers "offset out of range".
func TestFaultsDeposedLeaderFetch(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.client()
	createTopic(c, cl, "t", 1)
	pr, err := client.NewProducer(cl, client.DefaultProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	produce := func(n int) {
		t.Helper()
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := pr.Produce(ctx, &client.Record{Topic: "t", Value: []byte(strconv.Itoa(i))})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(10)
	li := c.leaderOf("t", 0)
	if li < 0 {
		t.Fatal("no leader")
	}
	old := c.agent(li).Broker()
	tp, err := old.Topic(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	hw := old.PartitionStates(tp)[0].HighWatermark
	c.net.Isolate(c.nodes[li].id)
	defer c.net.Heal()
	c.waitNewLeader("t", 0, li)
	produce(10) // committed by the new leader: the log now ends at hw+10

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = old.Fetch(ctx, "t", 0, hw+1, 1<<20, 0)
	var nl *broker.NotLeaderError
	if !errors.As(err, &nl) {
		t.Fatalf("fetch at %d on the deposed leader (its log ends at %d, the new leader's at %d): %v; want NotLeader",
			hw+1, hw, hw+10, err)
	}
}
