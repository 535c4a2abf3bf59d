package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/stratalog/strata/api/client"
)

const queueUsage = `usage:
  strata queue create   GROUP --topic T [--ack-timeout D] [--max-deliveries N] [--backoff-initial D]
                        [--backoff-max D] [--max-leased N] [--dead-letter-topic T] [--ordering none|key]
  strata queue receive  GROUP --topic T [--max N] [--timeout D] [--ack | --nack | --no-ack] [--output text|json]
  strata queue describe GROUP --topic T [--output text|json]
  strata queue list     [--topic T] [--output text|json]
  strata queue redrive  GROUP --topic T [--max N] [--reason max-deliveries|rejected]
  strata queue reset    GROUP --topic T (--to-earliest | --to-latest | --to-offset N | --to-time RFC3339)
`

// queueOpts are the flags of `strata queue`.
type queueOpts struct {
	cf                       clientFlags
	topic                    string
	settings                 client.QueueSettings
	max                      int
	reason                   string
	timeout                  time.Duration
	ack, nack, noAck         bool
	toEarliest, toLatest     bool
	toOffset                 int64
	toTime                   string
	ackTimeout, bInit, bMax  time.Duration
	maxDeliveries, maxLeased int
}

// queueCommands are the subcommands of `strata queue`.
var queueCommands = map[string]command{
	"create":   queueAdmin("create", (*queueOpts).createFlags, (*queueOpts).create),
	"receive":  queueSub("receive", (*queueOpts).receiveFlags, (*queueOpts).receive),
	"describe": queueAdmin("describe", nil, (*queueOpts).describe),
	"list":     queueAdmin("list", nil, (*queueOpts).list),
	"redrive":  queueAdmin("redrive", (*queueOpts).redriveFlags, (*queueOpts).redrive),
	"reset":    queueAdmin("reset", (*queueOpts).resetFlags, (*queueOpts).reset),
}

func runQueue(ctx context.Context, args []string) error {
	return dispatch(ctx, args, queueCommands, queueUsage, func(string) string { return queueUsage })
}

// queueSub makes the command of `strata queue sub`: it registers the
// client flags, --topic and the subcommand's flags, checks the arguments
// (a GROUP, and --topic, except for list) and calls run with a client.
func queueSub(sub string, flags func(*queueOpts, *flag.FlagSet),
	run func(o *queueOpts, ctx context.Context, cl *client.Client, group string) error) command {
	return func(ctx context.Context, args []string) error {
		var o queueOpts
		fs := flag.NewFlagSet("strata queue "+sub, flag.ContinueOnError)
		o.cf.register(fs, true)
		if sub == "list" {
			fs.StringVar(&o.topic, "topic", "", "only this topic's queue groups (default: every topic)")
		} else {
			fs.StringVar(&o.topic, "topic", "", "the queue group's topic (required)")
		}
		if flags != nil {
			flags(&o, fs)
		}
		if err := parseFlags(fs, interleave(fs, args)); err != nil {
			return err
		}
		badArgs := fs.NArg() != 1 || o.topic == ""
		if sub == "list" {
			badArgs = fs.NArg() != 0
		}
		if badArgs || (o.cf.output != "text" && o.cf.output != "json") {
			fmt.Fprint(os.Stderr, queueUsage)
			return exitError{2}
		}
		cl, err := o.cf.dial(ctx)
		if err != nil {
			return err
		}
		defer cl.Close()
		return run(&o, ctx, cl, fs.Arg(0)) // group is "" for list
	}
}

// queueAdmin is queueSub for the subcommands that are admin calls: run
// gets an Admin and the request timeout.
func queueAdmin(sub string, flags func(*queueOpts, *flag.FlagSet),
	run func(o *queueOpts, ctx context.Context, ad *client.Admin, group string) error) command {
	return queueSub(sub, flags, func(o *queueOpts, ctx context.Context, cl *client.Client, group string) error {
		ad := client.NewAdmin(cl)
		defer ad.Close()
		rctx, cancel := context.WithTimeout(ctx, o.cf.timeout)
		defer cancel()
		return run(o, rctx, ad, group)
	})
}

func (o *queueOpts) createFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.ackTimeout, "ack-timeout", 0, "lease length before redelivery (default 30s)")
	fs.IntVar(&o.maxDeliveries, "max-deliveries", 0, "deliveries before a record is dead-lettered (default 5)")
	fs.DurationVar(&o.bInit, "backoff-initial", 0, "first retry backoff after a nack (default 1s)")
	fs.DurationVar(&o.bMax, "backoff-max", 0, "largest retry backoff (default 5m)")
	fs.IntVar(&o.maxLeased, "max-leased", 0, "records leased at once per partition (default 10000)")
	fs.StringVar(&o.settings.DeadLetterTopic, "dead-letter-topic", "", "dead-letter topic (default TOPIC.GROUP.dlq)")
	fs.StringVar(&o.settings.Ordering, "ordering", "", "none (default) or key")
}

func (o *queueOpts) receiveFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.max, "max", 1, "records to receive")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "stop when no record came for this long")
	fs.BoolVar(&o.ack, "ack", false, "ack what was printed (the default)")
	fs.BoolVar(&o.nack, "nack", false, "nack what was printed: redelivered after the backoff")
	fs.BoolVar(&o.noAck, "no-ack", false, "settle nothing: the leases expire after the ack timeout")
}

func (o *queueOpts) redriveFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.max, "max", 0, "records to move back (0: all)")
	fs.StringVar(&o.reason, "reason", "", "only dead letters with this reason: max-deliveries or rejected (default: all)")
}

func (o *queueOpts) resetFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.toEarliest, "to-earliest", false, "deliver again from the first retained record")
	fs.BoolVar(&o.toLatest, "to-latest", false, "skip everything written so far")
	fs.Int64Var(&o.toOffset, "to-offset", -1, "deliver again from this offset on every partition")
	fs.StringVar(&o.toTime, "to-time", "", "deliver again from the first record at or after this RFC 3339 time")
}

// create creates the queue group and prints its settings.
func (o *queueOpts) create(ctx context.Context, ad *client.Admin, group string) error {
	s := o.settings
	s.AckTimeout, s.MaxDeliveries, s.BackoffInitial, s.BackoffMax = o.ackTimeout, int32(o.maxDeliveries), o.bInit, o.bMax
	s.MaxLeasedPerPartition = int32(o.maxLeased)
	got, err := ad.CreateQueueGroup(ctx, o.topic, group, s)
	if err != nil {
		return err
	}
	if o.cf.output == "json" {
		return printJSON(settingsJSON(got))
	}
	fmt.Printf("queue group %s on %s: ack timeout %v, max deliveries %d, backoff %v..%v, max leased %d, dead letters to %s, ordering %s\n",
		group, o.topic, got.AckTimeout, got.MaxDeliveries, got.BackoffInitial, got.BackoffMax, got.MaxLeasedPerPartition,
		got.DeadLetterTopic, got.Ordering)
	return nil
}

// describe prints the queue group's state.
func (o *queueOpts) describe(ctx context.Context, ad *client.Admin, group string) error {
	d, err := ad.DescribeQueueGroup(ctx, o.topic, group)
	if err != nil {
		return err
	}
	return printQueueDescription(d, o.cf.output)
}

// redrive moves dead letters back to the topic.
func (o *queueOpts) redrive(ctx context.Context, ad *client.Admin, group string) error {
	n, err := ad.RedriveQueueGroup(ctx, o.topic, group, client.RedriveOptions{Max: o.max, Reason: o.reason})
	if err != nil {
		return err
	}
	if o.cf.output == "json" {
		return printJSON(map[string]any{"redriven": n})
	}
	fmt.Printf("redrove %d records to %s\n", n, o.topic)
	return nil
}

// list prints the queue groups of a topic (every topic without --topic).
func (o *queueOpts) list(ctx context.Context, ad *client.Admin, _ string) error {
	gs, err := ad.ListQueueGroups(ctx, o.topic)
	if err != nil {
		return err
	}
	if o.cf.output == "json" {
		out := make([]map[string]string, len(gs))
		for i, g := range gs {
			out[i] = map[string]string{"topic": g.Topic, "group": g.Group}
		}
		return printJSON(out)
	}
	for _, g := range gs {
		fmt.Printf("%s\t%s\n", g.Topic, g.Group)
	}
	return nil
}

func (o *queueOpts) reset(ctx context.Context, ad *client.Admin, group string) error {
	var to client.Offset
	n := 0
	if o.toEarliest {
		to, n = client.AtStart(), n+1
	}
	if o.toLatest {
		to, n = client.AtEnd(), n+1
	}
	if o.toOffset >= 0 {
		to, n = client.AtOffset(o.toOffset), n+1
	}
	if o.toTime != "" {
		t, err := time.Parse(time.RFC3339Nano, o.toTime)
		if err != nil {
			return fmt.Errorf("--to-time: %w", err)
		}
		to, n = client.AtTime(t), n+1
	}
	if n != 1 {
		return fmt.Errorf("give exactly one of --to-earliest, --to-latest, --to-offset, --to-time")
	}
	offs, err := ad.ResetQueueGroup(ctx, o.topic, group, to)
	if err != nil {
		return err
	}
	if o.cf.output == "json" {
		out := []map[string]any{}
		for _, p := range offs {
			out = append(out, map[string]any{"topic": p.Topic, "partition": p.Partition, "offset": p.Offset})
		}
		return printJSON(out)
	}
	tw := newTable()
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tNEW-FLOOR")
	for _, p := range offs {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", p.Topic, p.Partition, p.Offset)
	}
	return tw.Flush()
}

// queueRecord is one line of `strata queue receive --output json`.
type queueRecord struct {
	consumedRecord
	Deliveries int32 `json:"deliveries"`
}

// receive prints up to --max records and settles them as the flags say.
func (o *queueOpts) receive(ctx context.Context, cl *client.Client, group string) error {
	settle := "ack"
	n := 0
	for _, f := range []struct {
		on   bool
		name string
	}{{o.ack, "ack"}, {o.nack, "nack"}, {o.noAck, "none"}} {
		if f.on {
			settle, n = f.name, n+1
		}
	}
	if n > 1 {
		return fmt.Errorf("give at most one of --ack, --nack, --no-ack")
	}
	qc, err := client.NewQueueConsumer(cl, client.QueueConsumerConfig{Topic: o.topic, Group: group, MaxMessages: max(o.max, 1)})
	if err != nil {
		return err
	}
	defer qc.Close()
	got := 0
	last := time.Now()
	for got < o.max && time.Since(last) < o.timeout {
		wait := max(o.timeout-time.Since(last), time.Millisecond)
		msgs, err := qc.Receive(ctx, o.max-got, min(wait, 5*time.Second))
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			continue
		}
		last = time.Now()
		got += len(msgs)
		for _, m := range msgs {
			if err := o.printMessage(m); err != nil {
				return err
			}
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cf.timeout)
		switch settle {
		case "ack":
			_, err = qc.Ack(sctx, msgs...)
		case "nack":
			_, err = qc.Nack(sctx, 0, "nacked with strata queue receive", msgs...)
		}
		cancel()
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "received %d records\n", got)
	return nil
}

func (o *queueOpts) printMessage(m client.QueueMessage) error {
	if o.cf.output == "text" {
		fmt.Printf("%d/%d\t%d\t%s\n", m.Partition, m.Offset, m.Deliveries, m.Value)
		return nil
	}
	r := queueRecord{consumedRecord: consumedRecord{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Timestamp: m.Timestamp.UTC().Format(time.RFC3339Nano), Value: string(m.Value)}, Deliveries: m.Deliveries}
	if m.Key != nil {
		k := string(m.Key)
		r.Key = &k
	}
	if len(m.Headers) > 0 {
		r.Headers = map[string]string{}
		for _, h := range m.Headers {
			r.Headers[h.Key] = string(h.Value)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func settingsJSON(s client.QueueSettings) map[string]any {
	return map[string]any{"ack_timeout_ms": s.AckTimeout.Milliseconds(), "max_deliveries": s.MaxDeliveries,
		"backoff_initial_ms": s.BackoffInitial.Milliseconds(), "backoff_max_ms": s.BackoffMax.Milliseconds(),
		"max_leased_per_partition": s.MaxLeasedPerPartition, "dead_letter_topic": s.DeadLetterTopic, "ordering": s.Ordering}
}

func printQueueDescription(d client.QueueGroupDescription, output string) error {
	var tot client.QueuePartitionState
	unknown := 0
	for _, p := range d.Partitions {
		if p.Unknown {
			unknown++
			continue
		}
		tot.Backlog += p.Backlog
		tot.Available += p.Available
		tot.Leased += p.Leased
		tot.Acked += p.Acked
		tot.DeadLettered += p.DeadLettered
		tot.Deliveries += p.Deliveries
		tot.Redeliveries += p.Redeliveries
		tot.OldestUnacked = max(tot.OldestUnacked, p.OldestUnacked)
	}
	rate := 0.0
	if tot.Deliveries > 0 {
		rate = float64(tot.Redeliveries) / float64(tot.Deliveries)
	}
	if output == "json" {
		parts := []map[string]any{}
		for _, p := range d.Partitions {
			parts = append(parts, map[string]any{"partition": p.Partition, "floor": p.Floor, "high_watermark": p.HighWatermark,
				"backlog": p.Backlog, "available": p.Available, "leased": p.Leased, "acked": p.Acked,
				"dead_lettered": p.DeadLettered, "deliveries": p.Deliveries, "redeliveries": p.Redeliveries,
				"oldest_unacked_seconds": p.OldestUnacked.Seconds(), "unknown": p.Unknown})
		}
		return printJSON(map[string]any{"topic": d.Topic, "group": d.Group, "settings": settingsJSON(d.Settings),
			"available": tot.Available, "leased": tot.Leased, "acked": tot.Acked, "dead_lettered": tot.DeadLettered,
			"backlog": tot.Backlog, "oldest_unacked_seconds": tot.OldestUnacked.Seconds(), "deliveries": tot.Deliveries,
			"redeliveries": tot.Redeliveries, "redelivery_rate": rate, "members": d.Members, "partitions": parts,
			"unknown_partitions": unknown})
	}
	fmt.Printf("queue group %s on %s: available %d, leased %d, acked %d, dead-lettered %d, oldest unacked %v, redelivery rate %.1f%%\n",
		d.Group, d.Topic, tot.Available, tot.Leased, tot.Acked, tot.DeadLettered, tot.OldestUnacked.Round(time.Millisecond), 100*rate)
	fmt.Printf("settings: ack timeout %v, max deliveries %d, backoff %v..%v, dead letters to %s, ordering %s\n\n",
		d.Settings.AckTimeout, d.Settings.MaxDeliveries, d.Settings.BackoffInitial, d.Settings.BackoffMax,
		d.Settings.DeadLetterTopic, d.Settings.Ordering)
	tw := newTable()
	fmt.Fprintln(tw, "PARTITION\tFLOOR\tEND\tAVAILABLE\tLEASED\tACKED\tDEAD\tDELIVERIES\tREDELIVERIES\tOLDEST")
	for _, p := range d.Partitions {
		if p.Unknown {
			fmt.Fprintf(tw, "%d\tunknown\tunknown\tunknown\tunknown\tunknown\tunknown\tunknown\tunknown\tunknown\n", p.Partition)
			continue
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\n", p.Partition, p.Floor, p.HighWatermark, p.Available,
			p.Leased, p.Acked, p.DeadLettered, p.Deliveries, p.Redeliveries, p.OldestUnacked.Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if unknown > 0 {
		fmt.Printf("\n%s; the totals leave them out\n", unknownNote(unknown))
	}
	if len(d.Members) > 0 {
		var ms []string
		for m, n := range d.Members {
			if m == "" {
				m = "(previous leader)"
			}
			ms = append(ms, fmt.Sprintf("%s: %d", m, n))
		}
		slices.Sort(ms)
		fmt.Printf("\nleases: %s\n", strings.Join(ms, ", "))
	}
	return nil
}
