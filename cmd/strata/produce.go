package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
)

// headerFlags collects repeated --header k=v flags.
type headerFlags []record.Header

func (h *headerFlags) String() string { return fmt.Sprint(len(*h)) }

func (h *headerFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("header %q is not KEY=VALUE", s)
	}
	*h = append(*h, record.Header{Key: k, Value: []byte(v)})
	return nil
}

// produceOpts are the flags of `strata produce`.
type produceOpts struct {
	cf          clientFlags
	keySep      string
	key         string
	headers     headerFlags
	partition   int
	producerID  int64
	compression string
	linger      time.Duration
	maxLine     int
	delay       time.Duration
}

// runProduce sends one record per line of standard input and waits for
// every acknowledgement.
func runProduce(ctx context.Context, args []string) error {
	var o produceOpts
	fs := flag.NewFlagSet("strata produce TOPIC", flag.ContinueOnError)
	o.cf.register(fs, false)
	fs.StringVar(&o.keySep, "key-separator", "", "split each line at the first SEP into key and value")
	fs.StringVar(&o.key, "key", "", "key of every record")
	fs.Var(&o.headers, "header", "header KEY=VALUE on every record (repeatable)")
	fs.IntVar(&o.partition, "partition", -1, "write to this partition (default: by key, else spread)")
	fs.Int64Var(&o.producerID, "producer-id", 0, "resume an earlier run's idempotent producer (the id it printed) so a retried input writes no duplicates")
	fs.StringVar(&o.compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	fs.DurationVar(&o.linger, "linger", 5*time.Millisecond, "how long a batch waits for more records")
	fs.IntVar(&o.maxLine, "max-line-bytes", 1<<20, "longest input line accepted")
	fs.DurationVar(&o.delay, "delay", 0, "queue groups deliver the records no earlier than this long from now (header strata-deliver-at)")
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: strata produce TOPIC [flags] < lines")
		return exitError{2}
	}
	if o.key != "" && o.keySep != "" {
		return errors.New("--key and --key-separator exclude each other")
	}
	if o.delay < 0 {
		return fmt.Errorf("--delay %v is negative", o.delay)
	}
	if o.delay > 0 {
		at := time.Now().Add(o.delay).UnixMilli()
		o.headers = append(o.headers, record.Header{Key: "strata-deliver-at", Value: []byte(fmt.Sprint(at))})
	}
	comp, err := record.ParseCompression(o.compression)
	if err != nil {
		return err
	}
	cl, err := o.cf.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	pcfg := client.DefaultProducerConfig()
	pcfg.ProducerID, pcfg.Compression, pcfg.Linger = o.producerID, comp, o.linger
	p, err := client.NewProducer(cl, pcfg)
	if err != nil {
		return err
	}
	idCtx, cancel := context.WithTimeout(ctx, o.cf.timeout)
	pid, err := p.ProducerID(idCtx)
	cancel()
	if err != nil {
		p.Close()
		return fmt.Errorf("get a producer id: %w", err)
	}
	fmt.Fprintf(os.Stderr, "producer id %d (rerun with --producer-id %d to resume without duplicates)\n", pid, pid)
	return o.send(ctx, p, fs.Arg(0), os.Stdin)
}

// send produces every line of in, then reports.
func (o *produceOpts) send(ctx context.Context, p *client.Producer, topic string, in io.Reader) error {
	var acked, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	cb := func(_ client.Result, err error) {
		if err != nil {
			failed.Add(1)
			errOnce.Do(func() { firstErr = err })
			return
		}
		acked.Add(1)
	}
	stopProgress := progress("produced", &acked)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), o.maxLine)
	var sent int64
	var inputErr error
	for line := 1; sc.Scan(); line++ {
		if ctx.Err() != nil {
			inputErr = ctx.Err()
			break
		}
		r, err := o.record(topic, sc.Bytes(), line)
		if err != nil {
			inputErr = err
			break
		}
		p.ProduceAsync(r, cb)
		sent++
	}
	if err := sc.Err(); err != nil && inputErr == nil {
		inputErr = fmt.Errorf("read standard input: %w", err)
	}
	closeErr := p.Close() // waits for every acknowledgement
	stopProgress()
	fmt.Fprintf(os.Stderr, "produced %d records\n", acked.Load())
	switch {
	case failed.Load() > 0:
		return fmt.Errorf("%d of %d records were not acknowledged: %w", failed.Load(), sent, firstErr)
	case inputErr != nil:
		return inputErr
	case closeErr != nil:
		return closeErr
	}
	return nil
}

// record turns one input line into a record (copying the bytes, which the
// scanner reuses).
func (o *produceOpts) record(topic string, line []byte, n int) (*client.Record, error) {
	r := &client.Record{Topic: topic, Headers: o.headers}
	switch {
	case o.keySep != "":
		k, v, ok := strings.Cut(string(line), o.keySep)
		if !ok {
			return nil, fmt.Errorf("line %d has no key separator %q", n, o.keySep)
		}
		r.Key, r.Value = []byte(k), []byte(v)
	case o.key != "":
		r.Key, r.Value = []byte(o.key), append([]byte(nil), line...)
	default:
		r.Value = append([]byte(nil), line...)
	}
	if o.partition >= 0 {
		r.Partition, r.HasPartition = int32(o.partition), true
	}
	return r, nil
}

// progress prints "<verb> N records (R/s)" on standard error every second
// while the command runs, when standard error is a terminal. The returned
// function stops it and clears the line.
func progress(verb string, n *atomic.Int64) func() {
	st, err := os.Stderr.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			case now := <-t.C:
				c := n.Load()
				fmt.Fprintf(os.Stderr, "\r\033[K%s %d records (%.0f/s)", verb, c, float64(c)/now.Sub(start).Seconds())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
