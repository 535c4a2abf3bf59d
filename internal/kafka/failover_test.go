package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/internal/agent"
	"github.com/stratalog/strata/internal/kafka"
)

// TestFailoverIdempotentProducer: three nodes, a topic replicated on all
// of them, an idempotent franz-go producer (acks=all) writing through the
// Kafka listeners while the partition's leader is stopped: every record it
// had acknowledged, and every record it sent, is in the log exactly once
// and in order.
func TestFailoverIdempotentProducer(t *testing.T) {
	nodes := startKafkaCluster(t, 3)
	c, err := client.Dial(ctxT(t), []string{nodes[0].GRPCAddr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := client.NewAdmin(c).CreateTopic(ctxT(t), "orders", client.TopicConfig{Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	seeds := []string{nodes[0].KafkaAddr(), nodes[1].KafkaAddr(), nodes[2].KafkaAddr()}
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("orders"),
		kgo.RecordRetries(1000), kgo.RetryTimeout(time.Minute), kgo.ProduceRequestTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const total = 3000
	// The first record is produced alone, so that the producer holds its
	// id before the stop: franz-go gives up a producer-id request whose
	// connection closes under it (the test is about the partition's leader
	// going away, not the metadata leader during InitProducerId).
	if err := prod.ProduceSync(ctxT(t), &kgo.Record{Key: []byte("k"), Value: []byte("0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for i := 1; i < total; i++ {
		if i == total/3 {
			leader := partitionLeader(t, nodes[0], "orders")
			for j, a := range nodes {
				if a != nil && a.Broker().ClusterStatus().AnsweredBy == leader {
					t.Logf("stopping %s, the leader of orders/0, after %d records sent", leader, i)
					a.Close()
					nodes[j] = nil
				}
			}
		}
		wg.Add(1)
		prod.Produce(context.Background(), &kgo.Record{Key: []byte("k"), Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d records not acknowledged, first: %v", len(failed), failed[0])
	}
	var live []string
	for _, a := range nodes {
		if a != nil {
			live = append(live, a.KafkaAddr())
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(live...), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next, hw := 0, int64(-1)
	for next < total {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", next, err)
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.HighWatermark < hw {
				t.Errorf("the high watermark went back from %d to %d", hw, p.HighWatermark)
			}
			hw = max(hw, p.HighWatermark)
		})
		for _, r := range fs.Records() {
			if got := string(r.Value); got != strconv.Itoa(next) {
				t.Fatalf("offset %d holds %q, want %d (a record lost, duplicated or out of order)", r.Offset, got, next)
			}
			next++
		}
	}
}

// partitionLeader returns the node id leading topic/0, as a's broker sees it.
func partitionLeader(t *testing.T, a *agent.Agent, topic string) string {
	t.Helper()
	tp, err := a.Broker().Topic(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	return a.Broker().PartitionStates(tp)[0].LeaderID
}

// startKafkaCluster starts n agents in this process, joined by gossip,
// each with a Kafka listener.
func startKafkaCluster(t *testing.T, n int) []*agent.Agent {
	t.Helper()
	var out []*agent.Agent
	for i := range n {
		cfg := agent.DefaultConfig()
		cfg.NodeID, cfg.DataDir = fmt.Sprintf("f%d", i+1), t.TempDir()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0"
		cfg.KafkaAddr, cfg.DataGroups, cfg.DeadNodeTimeout = "127.0.0.1:0", 1, 0
		cfg.RaftHeartbeatTimeout, cfg.LogLevel, cfg.MinFreeDiskBytes = 400*time.Millisecond, "error", -1
		if i > 0 {
			cfg.Join = []string{out[0].GossipAddr()}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		a, err := agent.New(ctx, cfg, nil)
		cancel()
		if err != nil {
			t.Fatalf("start %s: %v", cfg.NodeID, err)
		}
		t.Cleanup(func() { a.Close() })
		out = append(out, a)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(30 * time.Second)
	for len(out[0].Broker().Nodes()) != n {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%d of %d nodes registered", len(out[0].Broker().Nodes()), n)
		}
	}
	return out
}

// TestForwardedAdmin: CreateTopics, InitProducerId and DeleteTopics sent
// to a node that does not lead the metadata group are forwarded to the
// leader and succeed.
func TestForwardedAdmin(t *testing.T) {
	nodes := startKafkaCluster(t, 3)
	leader := nodes[0].Broker().ClusterStatus().MetadataLeader
	var follower *agent.Agent
	for _, a := range nodes {
		if a.Broker().ClusterStatus().AnsweredBy != leader {
			follower = a
			break
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(follower.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctxT(t), cl); err != nil {
		t.Fatal(err)
	}
	br := cl.Broker(int(kafka.NodeID32(follower.Broker().ClusterStatus().AnsweredBy)))

	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "fwd", 2, 3
	create.Topics = append(create.Topics, ct)
	create.TimeoutMillis = 10000
	cresp, err := br.RetriableRequest(ctxT(t), create)
	if err != nil {
		t.Fatal(err)
	}
	if code := cresp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("CreateTopics through a follower: %v", kerr.ErrorForCode(code))
	}
	ip := kmsg.NewPtrInitProducerIDRequest()
	iresp, err := br.RetriableRequest(ctxT(t), ip)
	if err != nil {
		t.Fatal(err)
	}
	if r := iresp.(*kmsg.InitProducerIDResponse); r.ErrorCode != 0 || r.ProducerID <= 0 {
		t.Fatalf("InitProducerId through a follower: %v, id %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID)
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	name := "fwd"
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = &name
	del.Topics, del.TopicNames, del.TimeoutMillis = append(del.Topics, dt), []string{name}, 10000
	dresp, err := br.RetriableRequest(ctxT(t), del)
	if err != nil {
		t.Fatal(err)
	}
	if code := dresp.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("DeleteTopics through a follower: %v", kerr.ErrorForCode(code))
	}
}
