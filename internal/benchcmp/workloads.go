package benchcmp

import (
	"context"
	"fmt"

	"github.com/stratalog/strata/internal/bench"
)

// workload is one table of the comparison: a workload at one record size.
type workload struct {
	id      string // "a", "b", ...
	variant string // tells apart workloads of one id and size ("4 members")
	title   string
	note    string // how each side is driven, printed under the title
	size    int
	targets []string // the first is Strata; ratios are Strata/each other
	// latency marks workloads judged by latency (ratios of p50 and p99).
	latency bool
	// run runs the workload once on a target.
	run func(ctx context.Context, t bench.Target, round int) (*bench.Result, error)
	// setup, when set, runs once before the rounds on each target.
	setup func(ctx context.Context, t bench.Target) error
	// notRun, when set, says why the workload does not run.
	notRun string
}

// key names the workload in runs: its id and variant.
func (w *workload) key() string { return w.id + w.variant }

// workloads lists the comparison's workloads in table order. Adding one is
// a few lines: a title, the targets and a run function over bench.
func (e *env) workloads() []*workload {
	var ws []*workload
	c := e.cfg
	for _, size := range c.Sizes {
		ws = append(ws, &workload{id: "a", size: size, targets: []string{tStrata, tNATS, tNATSAlways},
			title: "one partition/stream, asynchronous produce",
			note: "Strata: one Producer with its defaults (idempotent, linger 5 ms, 512 KiB batches, 5 in flight, " +
				"100,000 records buffered). NATS: one connection, PublishAsync with 8,192 awaiting their ack.",
			run: c.produceRun("a", size, false)})
	}
	for _, size := range c.Sizes {
		ws = append(ws, &workload{id: "b", size: size, targets: []string{tStrata, tNATS, tNATSAlways}, latency: true,
			title: "produce one record at a time, latency",
			note:  "Strata: Producer.Produce with linger 0. NATS: JetStream Publish (waits for the PubAck).",
			run:   c.produceRun("b", size, true)})
	}
	for _, size := range c.Sizes {
		stream := fmt.Sprintf("c-%d", size)
		ws = append(ws, &workload{id: "c", size: size, targets: []string{tStrata, tNATS, tNATSNoAck},
			title: fmt.Sprintf("consume %s stored records", bench.Count(float64(c.ConsumeRecords))),
			note: "Strata: a standalone Consumer of the partition from its start (no commits). NATS: a new pull " +
				"consumer per run, Messages iterator with 1,000 requested ahead, acking every message (explicit), " +
				"and the same with AckNone.",
			setup: func(ctx context.Context, t bench.Target) error {
				_, err := bench.Fill(ctx, t, stream, 1, c.ConsumeRecords, size, bench.ProducerOptions{})
				return err
			},
			run: func(ctx context.Context, t bench.Target, round int) (*bench.Result, error) {
				return bench.Consume(ctx, t, bench.ConsumeConfig{Stream: stream, Records: c.ConsumeRecords})
			}})
	}
	for _, members := range c.QueueMembers {
		ws = append(ws, e.queueWorkloads(members)...)
	}
	return append(ws, e.clusterWorkloads()...)
}

// produceRun is the run of (a), (b) and (e) at one size: a new stream per
// run (prefix, size, round), deleted after it; pipelined, bounded by
// ProduceRecords and ProduceDuration, or one record at a time (sync, with
// linger 0), bounded by SyncRecords and SyncDuration.
func (c Config) produceRun(prefix string, size int, sync bool) func(context.Context, bench.Target, int) (*bench.Result, error) {
	return func(ctx context.Context, t bench.Target, round int) (*bench.Result, error) {
		stream := fmt.Sprintf("%s-%d-r%d", prefix, size, round)
		defer func() { _ = t.DeleteStream(context.WithoutCancel(ctx), stream) }()
		pc := bench.ProduceConfig{Stream: stream, Records: c.ProduceRecords, Duration: c.ProduceDuration, Size: size}
		if sync {
			pc.Records, pc.Duration, pc.Sync = c.SyncRecords, c.SyncDuration, true
			pc.Producer = bench.ProducerOptions{LingerSet: true}
		}
		return bench.Produce(ctx, t, pc)
	}
}

// queueWorkloads are (d) with the given number of members, on (c)'s
// stored records.
func (e *env) queueWorkloads(members int) []*workload {
	c := e.cfg
	var ws []*workload
	for _, size := range c.Sizes {
		stream := fmt.Sprintf("c-%d", size) // (c)'s stored records
		w := &workload{id: "d", variant: fmt.Sprintf("m%d", members), size: size, targets: []string{tStrata, tNATS},
			title: fmt.Sprintf("queue: receive and ack %s records, %d member(s)", bench.Count(float64(c.QueueRecords)), members),
			note: fmt.Sprintf("Strata: a new queue group per run on (c)'s stored records, Receive of up to 1,000 records "+
				"with %s leased ahead per member (Prefetch), one AckAsync per batch (at most 4 in flight). ",
				bench.Count(float64(c.queuePrefetch(members)))) +
				"NATS: a new durable pull consumer per run (explicit " +
				"acks), Messages iterator with 1,000 requested ahead, Ack per message. Neither side's ack waits for " +
				"the server; the clock stops after each member's Flush (Strata: every ack committed with fsync; " +
				"NATS: a round trip after the last ack). Latency: from a batch's Receive returning to its Ack " +
				"returning, so compare the throughput.",
			setup: func(ctx context.Context, t bench.Target) error {
				_, err := bench.Fill(ctx, t, stream, 1, c.ConsumeRecords, size, bench.ProducerOptions{})
				return err
			},
			run: func(ctx context.Context, t bench.Target, round int) (*bench.Result, error) {
				return bench.Queue(ctx, t, bench.QueueConfig{Stream: stream, Group: fmt.Sprintf("q%d-m%d", round, members),
					Records: c.QueueRecords, Members: members, Options: bench.QueueOptions{Prefetch: c.queuePrefetch(members)}})
			}}
		if !e.queues {
			w.notRun = "not run: needs queue groups"
		}
		ws = append(ws, w)
	}
	return ws
}

// queuePrefetch is the Prefetch of each of members in (d): QueuePrefetch
// shared among them. A queue group caps the records leased at once per
// partition (10,000 by default), and four members each leasing 4,000
// ahead ran into it: (d) with 4 members was then slower than without
// prefetch (175,000 against 330,000 records/s, 128 B, one run each).
func (c Config) queuePrefetch(members int) int { return c.QueuePrefetch / max(members, 1) }

// clusterNote says how (e) runs, under both of its tables.
const clusterNote = "Three nodes of each system on this machine, sharing its 2 cores with the client. " +
	"Strata: a topic with replication factor 3 and one partition, acknowledged once a majority of its " +
	"replicas has it fsynced; the Go client dialled with the three addresses sends to the partition's " +
	"leader. NATS: three nats-servers in one cluster (routes), a stream with Replicas: 3, acknowledged once " +
	"a majority has stored it (fsynced as labelled); the producer connects to the stream leader's server. " +
	"Server CPU: the three processes together."

// clusterWorkloads are (e): (a) and (b) on 3-node clusters, Strata with
// replication factor 3 against NATS with R3 streams (both durabilities).
func (e *env) clusterWorkloads() []*workload {
	c := e.cfg
	targets := []string{tStrataR3, tNATSR3, tNATSR3Always}
	var ws []*workload
	for _, size := range c.Sizes {
		ws = append(ws, &workload{id: "e", variant: "async", size: size, targets: targets,
			title: "3 nodes, replication factor 3 / R3, asynchronous produce",
			note:  clusterNote + " Producers as in (a).",
			run:   c.produceRun("e-async", size, false)})
	}
	for _, size := range c.Sizes {
		ws = append(ws, &workload{id: "e", variant: "sync", size: size, targets: targets, latency: true,
			title: "3 nodes, replication factor 3 / R3, one at a time, latency",
			note:  clusterNote + " One record at a time as in (b).",
			run:   c.produceRun("e-sync", size, true)})
	}
	return ws
}

// setup runs every workload's setup on its targets (filling the streams
// that (c) and (d) read).
func (e *env) setup(ctx context.Context, ws []*workload) error {
	for _, w := range ws {
		if w.setup == nil || w.notRun != "" {
			continue
		}
		done := map[bench.Target]bool{}
		for _, name := range w.targets {
			t := e.targets[name]
			if name == tNATSNoAck {
				t = e.targets[tNATS] // same server, same streams
			}
			if done[t] {
				continue
			}
			done[t] = true
			fmt.Fprintf(e.cfg.Log, "setup (%s) %dB on %s\n", w.id, w.size, name)
			if err := w.setup(ctx, t); err != nil {
				return fmt.Errorf("setup (%s) %dB on %s: %w", w.id, w.size, name, err)
			}
		}
	}
	return nil
}
