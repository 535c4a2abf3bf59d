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
			run: func(ctx context.Context, t bench.Target, round int) (*bench.Result, error) {
				stream := fmt.Sprintf("a-%d-r%d", size, round)
				defer func() { _ = t.DeleteStream(context.WithoutCancel(ctx), stream) }()
				return bench.Produce(ctx, t, bench.ProduceConfig{Stream: stream, Records: c.ProduceRecords,
					Duration: c.ProduceDuration, Size: size})
			}})
	}
	for _, size := range c.Sizes {
		ws = append(ws, &workload{id: "b", size: size, targets: []string{tStrata, tNATS, tNATSAlways}, latency: true,
			title: "produce one record at a time, latency",
			note:  "Strata: Producer.Produce with linger 0. NATS: JetStream Publish (waits for the PubAck).",
			run: func(ctx context.Context, t bench.Target, round int) (*bench.Result, error) {
				stream := fmt.Sprintf("b-%d-r%d", size, round)
				defer func() { _ = t.DeleteStream(context.WithoutCancel(ctx), stream) }()
				return bench.Produce(ctx, t, bench.ProduceConfig{Stream: stream, Records: c.SyncRecords,
					Duration: c.SyncDuration, Size: size, Sync: true,
					Producer: bench.ProducerOptions{LingerSet: true}})
			}})
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
	return append(ws, clusterWorkloads(c)...)
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
			note: "Strata: a new queue group per run on (c)'s stored records, Receive of up to 1,000 records, " +
				"one Ack call per batch. NATS: a new durable pull consumer per run (explicit acks), Messages " +
				"iterator with 1,000 requested ahead, Ack per message. Latency: from a batch's Receive returning " +
				"to its Ack returning; NATS's Ack does not wait for the server, Strata's returns once the " +
				"acks are committed (fsync), so compare the throughput.",
			setup: func(ctx context.Context, t bench.Target) error {
				_, err := bench.Fill(ctx, t, stream, 1, c.ConsumeRecords, size, bench.ProducerOptions{})
				return err
			},
			run: func(ctx context.Context, t bench.Target, round int) (*bench.Result, error) {
				return bench.Queue(ctx, t, bench.QueueConfig{Stream: stream, Group: fmt.Sprintf("q%d-m%d", round, members),
					Records: c.QueueRecords, Members: members})
			}}
		if !e.queues {
			w.notRun = "not run: needs queue groups"
		}
		ws = append(ws, w)
	}
	return ws
}

// clusterWorkloads are (e): a 3-node Strata cluster with replication
// factor 3 against a 3-node NATS cluster with R3 streams, asynchronous
// produce and one record at a time. To add them: start three strata
// servers (--join) and three nats-servers (cluster routes) in start, add
// targets "strata-r3" and "nats-r3" whose CreateStream asks for 3
// replicas, and return the (a) and (b) run functions with those targets.
func clusterWorkloads(c Config) []*workload {
	var ws []*workload
	for _, size := range c.Sizes {
		ws = append(ws,
			&workload{id: "e", size: size, title: "3 nodes, replication factor 3 / R3, asynchronous produce",
				notRun: "not run: needs the 3-node cluster"},
			&workload{id: "e", size: size, title: "3 nodes, replication factor 3 / R3, one at a time, latency",
				latency: true, notRun: "not run: needs the 3-node cluster"})
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
