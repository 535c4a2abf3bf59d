package faulttest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/history"
)

// queueSpec is the queue group the queue tests work: short leases so that
// expiries and dead-lettering happen within the test, key ordering on.
var queueSpec = history.QueueSpec{MaxDeliveries: 3, AckTimeout: time.Second, KeyOrdering: true}

// TestFaultsQueue works a key-ordered queue group with three members while
// the leader of its partitions is killed, isolated or stalled, and checks
// the history: every record acked or dead-lettered and never both, each
// dead letter once, delivery counts within max deliveries, one live lease
// per record and one record in flight per key.
func TestFaultsQueue(t *testing.T) {
	schedules := []struct {
		name string
		run  schedule
	}{
		{"leader killed", killLeader},
		{"isolated leader", isolateLeader},
		{"minority split", splitMinority},
		{"leader stalled", stallLeader},
	}
	for _, s := range schedules {
		t.Run(s.name, func(t *testing.T) { runQueueHistory(t, s.run) })
	}
}

// fate says what the members do with a record, by its number: reject it,
// let its lease expire every time, nack it once, or ack it.
func fate(i int) string {
	switch i % 10 {
	case 0:
		return "reject"
	case 1:
		return "expire"
	case 2:
		return "nack-once"
	}
	return "ack"
}

func runQueueHistory(t *testing.T, sched schedule) {
	const topic, group, parts = "jobs", "workers", 2
	n := 300
	if long() {
		n = 2000
	}
	c := startCluster(t, 3)
	cl := c.client()
	createTopic(c, cl, topic, parts)
	admin := client.NewAdmin(cl)
	c.eventually(30*time.Second, "the queue group", func() error {
		_, err := admin.CreateQueueGroup(context.Background(), topic, group, client.QueueSettings{
			AckTimeout: queueSpec.AckTimeout, MaxDeliveries: queueSpec.MaxDeliveries,
			BackoffInitial: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Ordering: "key"})
		return err
	})
	rec := history.NewRecorder()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for m := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(t, cl, rec, topic, group, fmt.Sprintf("m%d", m), stop)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		produceJobs(t, cl, topic, n)
	}()
	hold(500 * time.Millisecond)
	sched(t, c, topic)
	c.eventually(90*time.Second, "every record acked or dead-lettered", func() error {
		d, err := admin.DescribeQueueGroup(context.Background(), topic, group)
		if err != nil {
			return err
		}
		total := int64(0)
		for _, ps := range d.Partitions {
			if ps.Floor < ps.HighWatermark {
				return fmt.Errorf("partition %d: %+v; members %v; leaders by their own account: %s", ps.Partition, ps, d.Members, c.leaders(topic))
			}
			total += ps.HighWatermark
		}
		if total < int64(n) {
			return fmt.Errorf("%d of %d records produced", total, n)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	recs := c.readAll(cl, topic, parts)
	dlq := c.readAll(cl, topic+"."+group+".dlq", 1)
	dead, err := deadLetters(dlq[0])
	if err != nil {
		t.Fatal(err)
	}
	res := history.CheckQueue(queueSpec, values(recs), rec.Deliveries(), rec.Settles(), dead)
	t.Logf("queue: %v", res.Counts)
	for _, v := range res.Violations {
		t.Error(v)
	}
	d, err := admin.DescribeQueueGroup(context.Background(), topic, group)
	if err != nil {
		t.Fatal(err)
	}
	var deadCount uint64
	for _, ps := range d.Partitions {
		deadCount += ps.DeadLettered
	}
	if deadCount != uint64(len(dead)) {
		t.Errorf("describe counts %d dead letters, the dead-letter topic holds %d", deadCount, len(dead))
	}
}

// produceJobs writes n keyed records numbered 0..n-1 ("j<i>", key
// "k<i%17>") with an idempotent producer.
func produceJobs(t *testing.T, cl *client.Client, topic string, n int) {
	pcfg := client.DefaultProducerConfig()
	pcfg.MaxRetries, pcfg.MaxRetryBackoff = 60, 500*time.Millisecond
	pr, err := client.NewProducer(cl, pcfg)
	if err != nil {
		t.Error(err)
		return
	}
	defer pr.Close()
	pace := time.NewTicker(10 * time.Millisecond) // about 100 records a second, across the faults
	defer pace.Stop()
	for i := range n {
		v := "j" + strconv.Itoa(i)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, err := pr.Produce(ctx, &client.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(i%17)), Value: []byte(v)})
		cancel()
		if err != nil {
			t.Errorf("produce %s: %v", v, err)
			return
		}
		<-pace.C
	}
}

// worker is one member of the queue group: it receives, records each
// delivery, and settles each record as its fate says, one call per
// record, until stop.
func worker(t *testing.T, cl *client.Client, rec *history.Recorder, topic, group, member string, stop <-chan struct{}) {
	q, err := client.NewQueueConsumer(cl, client.QueueConsumerConfig{Topic: topic, Group: group, MemberID: member, MaxMessages: 10, MaxWait: 300 * time.Millisecond})
	if err != nil {
		t.Error(err)
		return
	}
	defer q.Close()
	for {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		call := rec.Now()
		msgs, err := q.Receive(ctx, 10, 300*time.Millisecond)
		ret := rec.Now()
		cancel()
		if err != nil {
			select { // no leader now: do not spin
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		for _, m := range msgs {
			rec.Delivered(history.Delivery{Member: member, Partition: m.Partition, Offset: m.Offset, Value: string(m.Value),
				Key: string(m.Key), Deliveries: m.Deliveries, Call: call, Return: ret})
		}
		for _, m := range msgs {
			settle(rec, q, member, m)
		}
	}
}

func settle(rec *history.Recorder, q *client.QueueConsumer, member string, m client.QueueMessage) {
	i, _ := strconv.Atoi(strings.TrimPrefix(string(m.Value), "j"))
	s := history.Settle{Member: member, Partition: m.Partition, Offset: m.Offset, Call: rec.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var n int
	var err error
	switch f := fate(i); {
	case f == "reject":
		s.Kind = history.Reject
		n, err = q.Reject(ctx, "poison", m)
	case f == "expire":
		return
	case f == "nack-once" && m.Deliveries == 1:
		s.Kind = history.Nack
		n, err = q.Nack(ctx, 50*time.Millisecond, "try again", m)
	default:
		s.Kind = history.Ack
		n, err = q.Ack(ctx, m)
	}
	s.Return, s.OK = rec.Now(), err == nil && n == 1
	if err != nil {
		s.Err = err.Error()
	}
	rec.Settled(s)
}

// deadLetters decodes the records of a dead-letter topic.
func deadLetters(recs []record.Record) ([]history.DeadLetter, error) {
	var out []history.DeadLetter
	for _, r := range recs {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		p, err1 := strconv.Atoi(h["strata-dlq-partition"])
		off, err2 := strconv.ParseInt(h["strata-dlq-offset"], 10, 64)
		n, err3 := strconv.Atoi(h["strata-dlq-deliveries"])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("dead letter %q: %w", r.Value, err)
		}
		out = append(out, history.DeadLetter{Partition: int32(p), Offset: off, Value: string(r.Value),
			Deliveries: int32(n), Reason: h["strata-dlq-reason"]})
	}
	return out, nil
}
