package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stratalog/strata/internal/bench"
)

const benchUsage = `Usage:
  strata bench produce [flags]   write records, pipelined (default) or one at a time (--sync)
  strata bench consume [flags]   read stored records, standalone or as a stream group (--group)
  strata bench e2e     [flags]   produce-to-consume latency
  strata bench queue   [flags]   queue group: receive and ack stored records

Run 'strata bench WORKLOAD -h' for its flags. The results go to standard
output (a table, or one JSON object with --output json); a progress line
goes to standard error when it is a terminal.
`

// benchOpts are the flags every bench workload takes.
type benchOpts struct {
	cf          clientFlags
	topic       string
	size        int
	partitions  int
	records     int64
	duration    time.Duration
	cpuProfile  string
	stopProfile func() error // set by parseBench
}

func (o *benchOpts) register(fs *flag.FlagSet, records int64) {
	o.cf.register(fs, true)
	fs.StringVar(&o.topic, "topic", "bench", "topic (created with --partitions when missing)")
	fs.IntVar(&o.size, "size", 128, "value size in bytes")
	fs.IntVar(&o.partitions, "partitions", 1, "partitions of the topic when it is created")
	fs.Int64Var(&o.records, "records", records, "number of records")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this client to the file")
}

// producerFlags are the flags of workloads that produce.
type producerFlags struct {
	batchBytes  int
	linger      time.Duration
	compression string
	maxPending  int
}

func (p *producerFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&p.batchBytes, "batch-bytes", 0, "batch size at which a batch is sent (0: client default, 512 KiB)")
	fs.DurationVar(&p.linger, "linger", 0, "how long a batch waits for more records (default: 5ms pipelined, 0 one at a time and e2e)")
	fs.StringVar(&p.compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	fs.IntVar(&p.maxPending, "max-pending", 0, "records sent and not yet acknowledged, per producer (0: client default, 100000)")
}

func (p *producerFlags) options(fs *flag.FlagSet, defLinger time.Duration) bench.ProducerOptions {
	o := bench.ProducerOptions{BatchBytes: p.batchBytes, Compression: p.compression,
		MaxPending: p.maxPending, Linger: defLinger, LingerSet: true}
	if flagSet(fs, "linger") {
		o.Linger = p.linger
	}
	return o
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// benchCommands are the workloads of `strata bench`.
var benchCommands = withHelp(map[string]command{
	"produce": runBenchProduce,
	"consume": runBenchConsume,
	"e2e":     runBenchE2E,
	"queue":   runBenchQueue,
}, benchUsage)

// runBench dispatches `strata bench WORKLOAD`.
func runBench(ctx context.Context, args []string) error {
	return dispatch(ctx, args, benchCommands, benchUsage, func(w string) string {
		return fmt.Sprintf("strata bench: unknown workload %q\n\n%s", w, benchUsage)
	})
}

// parseBench parses a workload's flags and checks the common ones.
func parseBench(fs *flag.FlagSet, o *benchOpts, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		fmt.Fprintf(os.Stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
		return exitError{2}
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case o.cf.output != "text" && o.cf.output != "json":
		return bad("--output %q: want text or json", o.cf.output)
	case o.size < 0:
		return bad("--size %d < 0", o.size)
	case o.partitions < 1:
		return bad("--partitions %d < 1", o.partitions)
	case o.records < 0 || (o.records == 0 && o.duration <= 0):
		return bad("--records %d: want > 0 (or a --duration)", o.records)
	}
	stop, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	o.stopProfile = stop
	return nil
}

// progressOut is where the live progress line goes: standard error when it
// is a terminal.
func progressOut() io.Writer {
	if bench.IsTerminal(os.Stderr) {
		return os.Stderr
	}
	return nil
}

// report prints a result (even a partial one) and returns err.
func (o *benchOpts) report(res *bench.Result, settings string, err error) error {
	if o.stopProfile != nil {
		err = errors.Join(err, o.stopProfile())
	}
	if res != nil {
		s := res.Summary()
		var werr error
		if o.cf.output == "json" {
			werr = s.WriteJSON(os.Stdout)
		} else {
			fmt.Println(settings)
			werr = s.WriteTable(os.Stdout)
		}
		err = errors.Join(err, werr)
	}
	return err
}

func runBenchProduce(ctx context.Context, args []string) error {
	var o benchOpts
	var pf producerFlags
	var producers int
	var sync, keyed bool
	var rate float64
	fs := flag.NewFlagSet("strata bench produce", flag.ContinueOnError)
	o.register(fs, 1_000_000)
	pf.register(fs)
	fs.DurationVar(&o.duration, "duration", 0, "stop sending after this long (0: after --records)")
	fs.IntVar(&producers, "producers", 1, "concurrent producers, each with its own connection")
	fs.BoolVar(&sync, "sync", false, "send one record at a time and wait for its acknowledgement (latency) instead of pipelining")
	fs.BoolVar(&keyed, "keyed", false, "give records one of 1024 keys (partition by key hash) instead of none (sticky)")
	fs.Float64Var(&rate, "rate", 0, "records per second across producers (0: as fast as possible)")
	if err := parseBench(fs, &o, args); err != nil {
		return err
	}
	if producers < 1 {
		fmt.Fprintln(os.Stderr, "strata bench produce: --producers must be ≥ 1")
		return exitError{2}
	}
	defLinger := 5 * time.Millisecond
	if sync {
		defLinger = 0
	}
	cfg := bench.ProduceConfig{Stream: o.topic, Partitions: o.partitions, Records: o.records,
		Duration: o.duration, Size: o.size, Producers: producers, Sync: sync, Keyed: keyed, Rate: rate,
		Producer: pf.options(fs, defLinger), Progress: progressOut()}
	t, err := bench.NewStrata(ctx, o.cf.brokerList())
	if err != nil {
		return err
	}
	defer t.Close()
	res, err := bench.Produce(ctx, t, cfg)
	settings := fmt.Sprintf("topic %s, %d partition(s), %d producer(s), linger %v, compression %s, keyed %v",
		o.topic, o.partitions, producers, cfg.Producer.Linger, pf.compression, keyed)
	return o.report(res, settings, err)
}

func runBenchConsume(ctx context.Context, args []string) error {
	var o benchOpts
	var group string
	var fill bool
	var timeout time.Duration
	fs := flag.NewFlagSet("strata bench consume", flag.ContinueOnError)
	o.register(fs, 1_000_000)
	fs.StringVar(&group, "group", "", "consume as a member of this stream group (default: standalone, every partition from the start)")
	fs.BoolVar(&fill, "fill", true, "first produce (unmeasured) the records the topic lacks, with --size and --partitions")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "give up when no record arrived for this long")
	if err := parseBench(fs, &o, args); err != nil {
		return err
	}
	t, err := bench.NewStrata(ctx, o.cf.brokerList())
	if err != nil {
		return err
	}
	defer t.Close()
	if fill {
		added, err := bench.Fill(ctx, t, o.topic, o.partitions, o.records, o.size, bench.ProducerOptions{})
		if err != nil {
			return fmt.Errorf("fill %s: %w", o.topic, err)
		}
		if added > 0 {
			fmt.Fprintf(os.Stderr, "filled %s with %d records of %d bytes\n", o.topic, added, o.size)
		}
	}
	res, err := bench.Consume(ctx, t, bench.ConsumeConfig{Stream: o.topic, Records: o.records,
		Consumer: bench.ConsumerOptions{Group: group}, Timeout: timeout, Progress: progressOut()})
	mode := "standalone"
	if group != "" {
		mode = "group " + group
	}
	return o.report(res, fmt.Sprintf("topic %s, %s", o.topic, mode), err)
}

func runBenchE2E(ctx context.Context, args []string) error {
	var o benchOpts
	var pf producerFlags
	var rate float64
	var timeout time.Duration
	fs := flag.NewFlagSet("strata bench e2e", flag.ContinueOnError)
	o.register(fs, 10_000)
	pf.register(fs)
	fs.Float64Var(&rate, "rate", 1000, "records per second (0: as fast as possible, latency then includes queueing)")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "give up when no record arrived for this long")
	if err := parseBench(fs, &o, args); err != nil {
		return err
	}
	t, err := bench.NewStrata(ctx, o.cf.brokerList())
	if err != nil {
		return err
	}
	defer t.Close()
	cfg := bench.E2EConfig{Stream: o.topic, Partitions: o.partitions, Records: o.records, Size: o.size,
		Rate: rate, Producer: pf.options(fs, 0), Timeout: timeout, Progress: progressOut()}
	res, err := bench.E2E(ctx, t, cfg)
	settings := fmt.Sprintf("topic %s, %d partition(s), %.0f records/s offered, linger %v",
		o.topic, o.partitions, rate, cfg.Producer.Linger)
	return o.report(res, settings, err)
}

// runBenchQueue runs the queue-group workload: receive and ack stored
// records (a new group starts at the topic's first record).
func runBenchQueue(ctx context.Context, args []string) error {
	var o benchOpts
	var group string
	var fill bool
	var prefetch int
	fs := flag.NewFlagSet("strata bench queue", flag.ContinueOnError)
	o.register(fs, 1_000_000)
	fs.StringVar(&group, "group", "", "queue group (default: a new one, bench-queue-UNIXNANO, so the run starts at the first record)")
	fs.BoolVar(&fill, "fill", true, "first produce (unmeasured) the records the topic lacks")
	fs.IntVar(&prefetch, "prefetch", bench.DefaultQueuePrefetch, "records leased ahead of the receive loop (QueueConsumerConfig.Prefetch; 0: none)")
	if err := parseBench(fs, &o, args); err != nil {
		return err
	}
	if prefetch < 0 {
		fmt.Fprintln(os.Stderr, "strata bench queue: --prefetch must be ≥ 0")
		return exitError{2}
	}
	if group == "" {
		group = fmt.Sprintf("bench-queue-%d", time.Now().UnixNano())
	}
	t, err := bench.NewStrata(ctx, o.cf.brokerList())
	if err != nil {
		return err
	}
	defer t.Close()
	if fill {
		if _, err := bench.Fill(ctx, t, o.topic, o.partitions, o.records, o.size, bench.ProducerOptions{}); err != nil {
			return fmt.Errorf("fill %s: %w", o.topic, err)
		}
	}
	res, err := bench.Queue(ctx, t, bench.QueueConfig{Stream: o.topic, Group: group, Records: o.records,
		Options: bench.QueueOptions{Prefetch: prefetch}, Progress: progressOut()})
	return o.report(res, fmt.Sprintf("topic %s, queue group %s, prefetch %d", o.topic, group, prefetch), err)
}
