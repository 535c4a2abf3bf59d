package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
)

// consumeOpts are the flags of `strata consume`.
type consumeOpts struct {
	cf            clientFlags
	group         string
	fromBeginning bool
	fromLatest    bool
	offset        int64
	since         string
	partition     int
	max           int64
	timeout       time.Duration
}

// consumedRecord is one line of `strata consume --output json`.
type consumedRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp string            `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
}

// runConsume prints the records of a topic, standalone or as a member of a
// stream group.
func runConsume(ctx context.Context, args []string) error {
	var o consumeOpts
	fs := flag.NewFlagSet("strata consume TOPIC", flag.ContinueOnError)
	o.cf.register(fs, true)
	fs.StringVar(&o.group, "group", "", "consume as a member of this stream group and commit what was printed")
	fs.BoolVar(&o.fromBeginning, "from-beginning", false, "start at the earliest retained record (a group without a committed offset always does)")
	fs.BoolVar(&o.fromLatest, "from-latest", false, "with --group: a partition without a committed offset starts at its end")
	fs.Int64Var(&o.offset, "offset", -1, "start at this offset (with --partition)")
	fs.StringVar(&o.since, "since", "", "start at the first record at or after this RFC 3339 time")
	fs.IntVar(&o.partition, "partition", -1, "read only this partition")
	fs.Int64Var(&o.max, "max", 0, "stop after this many records (0: no limit)")
	fs.DurationVar(&o.timeout, "timeout", 0, "stop when no record arrived for this long (0: wait forever)")
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: strata consume TOPIC [flags]")
		return exitError{2}
	}
	start, err := o.startAt()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata consume:", err)
		return exitError{2}
	}
	if o.cf.output != "text" && o.cf.output != "json" {
		fmt.Fprintf(os.Stderr, "strata consume: --output %q: want text or json\n", o.cf.output)
		return exitError{2}
	}
	cl, err := o.cf.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	co, err := o.consumer(ctx, cl, fs.Arg(0), start)
	if err != nil {
		return err
	}
	return o.loop(ctx, co)
}

// startAt checks the position flags and returns where a standalone
// consumer starts.
func (o *consumeOpts) startAt() (client.Offset, error) {
	set := 0
	for _, b := range []bool{o.fromBeginning, o.fromLatest, o.offset >= 0, o.since != ""} {
		if b {
			set++
		}
	}
	switch {
	case set > 1:
		return client.Offset{}, errors.New("--from-beginning, --from-latest, --offset and --since exclude each other")
	case o.group != "" && (o.offset >= 0 || o.since != "" || o.partition >= 0):
		return client.Offset{}, errors.New("a group starts at its committed offsets: move them with 'strata group reset' instead of --offset, --since or --partition")
	case o.offset >= 0 && o.partition < 0:
		return client.Offset{}, errors.New("--offset needs --partition")
	case o.fromLatest && o.group == "":
		return client.Offset{}, errors.New("--from-latest is for groups (a standalone consumer starts at the end unless told otherwise)")
	case o.fromBeginning:
		return client.AtStart(), nil
	case o.offset >= 0:
		return client.AtOffset(o.offset), nil
	case o.since != "":
		t, err := time.Parse(time.RFC3339Nano, o.since)
		if err != nil {
			return client.Offset{}, fmt.Errorf("--since %q is not an RFC 3339 time", o.since)
		}
		return client.AtTime(t), nil
	}
	return client.AtEnd(), nil
}

// consumer builds a group member or a standalone consumer assigned to the
// topic's partitions.
func (o *consumeOpts) consumer(ctx context.Context, cl *client.Client, topic string, start client.Offset) (*client.Consumer, error) {
	cfg := client.DefaultConsumerConfig()
	cfg.AutoCommit = false // commit exactly what was printed, below
	if o.group != "" {
		cfg.Group, cfg.Topics = o.group, []string{topic}
		if o.fromLatest {
			cfg.StartAt = client.Latest
		}
		return client.NewConsumer(cl, cfg)
	}
	mctx, cancel := context.WithTimeout(ctx, o.cf.timeout)
	n, err := cl.PartitionCount(mctx, topic)
	cancel()
	if err != nil {
		return nil, err
	}
	co, err := client.NewConsumer(cl, cfg)
	if err != nil {
		return nil, err
	}
	var tps []client.TopicPartition
	for p := 0; p < n; p++ {
		if o.partition < 0 || o.partition == p {
			tps = append(tps, client.TopicPartition{Topic: topic, Partition: int32(p)})
		}
	}
	if len(tps) == 0 {
		co.Close()
		return nil, fmt.Errorf("topic %q has no partition %d (it has %d)", topic, o.partition, n)
	}
	if err := co.Assign(start, tps...); err != nil {
		co.Close()
		return nil, err
	}
	return co, nil
}

// loop prints records until --max, --timeout or a signal, then commits
// what it printed (with --group) and closes the consumer.
func (o *consumeOpts) loop(ctx context.Context, co *client.Consumer) (err error) {
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	next := map[client.TopicPartition]int64{}
	var printed atomic.Int64
	stopProgress := progress("consumed", &printed)
	defer func() {
		stopProgress()
		err = errors.Join(err, w.Flush(), o.finish(co, next))
	}()
	for o.max == 0 || printed.Load() < o.max {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if o.timeout > 0 {
			pctx, cancel = context.WithTimeout(ctx, o.timeout)
		}
		fetches, err := co.Poll(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				return nil // a signal, or nothing arrived for --timeout
			}
			return err
		}
		for tp, r := range fetches.All() {
			if o.max > 0 && printed.Load() >= o.max {
				break
			}
			if err := o.print(w, tp, r); err != nil {
				return err
			}
			next[tp] = r.Offset + 1
			printed.Add(1)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func (o *consumeOpts) print(w *bufio.Writer, tp client.TopicPartition, r *record.Record) error {
	if o.cf.output == "text" {
		w.Write(r.Value)
		return w.WriteByte('\n')
	}
	out := consumedRecord{Topic: tp.Topic, Partition: tp.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano), Value: string(r.Value)}
	if r.Key != nil {
		k := string(r.Key)
		out.Key = &k
	}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			out.Headers[h.Key] = string(h.Value)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	w.Write(b)
	return w.WriteByte('\n')
}

// finish commits the offsets after the printed records (with --group) and
// closes the consumer (leaving the group).
func (o *consumeOpts) finish(co *client.Consumer, next map[client.TopicPartition]int64) error {
	var errs []error
	if o.group != "" && len(next) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), o.cf.timeout)
		if err := co.CommitOffsets(ctx, next); err != nil {
			errs = append(errs, fmt.Errorf("commit what was printed: %w", err))
		}
		cancel()
	}
	return errors.Join(append(errs, co.Close())...)
}
