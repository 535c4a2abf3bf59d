// Command benchcmp runs Strata and NATS JetStream side by side on this
// machine and prints one table per workload (medians of several rounds,
// with the ratio Strata/NATS). `make bench-compare` builds and runs it;
// see internal/benchcmp. It is a development tool, kept apart from the
// strata binary so that binary does not link the NATS client.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/stratalog/strata/internal/benchcmp"
)

func main() {
	cfg := benchcmp.DefaultConfig()
	sizes := "128,1024"
	var strataArgs, only string
	flag.StringVar(&cfg.StrataBin, "strata", "bin/strata", "strata binary")
	flag.StringVar(&cfg.NATSBin, "nats-server", "bin/tools/nats-server", "nats-server binary")
	flag.StringVar(&cfg.Dir, "dir", "", "directory for the servers' data and logs (default: a temporary one, removed at the end)")
	flag.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds (every workload on every target per round)")
	flag.StringVar(&sizes, "sizes", sizes, "comma-separated record sizes in bytes")
	flag.StringVar(&only, "only", "", "comma-separated workloads to run (a,b,c,d,e; default all); only their servers are started")
	flag.Int64Var(&cfg.ProduceRecords, "produce-records", cfg.ProduceRecords, "(a) and (e) asynchronous: records per run, at most")
	flag.DurationVar(&cfg.ProduceDuration, "produce-duration", cfg.ProduceDuration, "(a) and (e) asynchronous: sending time per run, at most")
	flag.Int64Var(&cfg.SyncRecords, "sync-records", cfg.SyncRecords, "(b) and (e) one at a time: records per run, at most")
	flag.DurationVar(&cfg.SyncDuration, "sync-duration", cfg.SyncDuration, "(b) and (e) one at a time: sending time per run, at most")
	flag.Int64Var(&cfg.ConsumeRecords, "consume-records", cfg.ConsumeRecords, "(c): stored records read per run")
	flag.Int64Var(&cfg.QueueRecords, "queue-records", cfg.QueueRecords, "(d): records received and acked per run")
	flag.IntVar(&cfg.NATSMaxPending, "nats-max-pending", 0, "asynchronous publish window of a NATS producer (default 8192)")
	flag.IntVar(&cfg.QueuePrefetch, "queue-prefetch", cfg.QueuePrefetch, "(d): records the Strata members lease ahead of their loops, shared evenly among them (0: none)")
	queueMembers := "1,4"
	flag.StringVar(&queueMembers, "queue-members", queueMembers, "(d): comma-separated member counts, one table each (each member has its own connection)")
	flag.DurationVar(&cfg.Pause, "pause", cfg.Pause, "pause between runs")
	flag.StringVar(&strataArgs, "strata-args", "", "extra flags for every strata server, space-separated; {node} becomes the node id (e.g. --cpuprofile=/tmp/strata-{node}.prof)")
	flag.StringVar(&cfg.JSONPath, "json", "", "write every run's figures to this file")
	flag.StringVar(&cfg.SVGPath, "svg", "", "draw the chart into this SVG file")
	replot := flag.String("replot", "", "run nothing: print the tables (and -svg) again from a -json file of an earlier run (give the same -sizes and -queue-members)")
	flag.Parse()
	cfg.Sizes = nil
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "benchcmp: bad size %q\n", s)
			os.Exit(2)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	cfg.QueueMembers = nil
	for _, s := range strings.Split(queueMembers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "benchcmp: bad member count %q\n", s)
			os.Exit(2)
		}
		cfg.QueueMembers = append(cfg.QueueMembers, n)
	}
	cfg.StrataArgs = strings.Fields(strataArgs)
	if only != "" {
		cfg.Only = strings.Split(only, ",")
	}
	if *replot != "" {
		if err := benchcmp.Replot(cfg, *replot); err != nil {
			fmt.Fprintln(os.Stderr, "benchcmp:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := benchcmp.Compare(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "benchcmp:", err)
		os.Exit(1)
	}
}
