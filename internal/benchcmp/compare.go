package benchcmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratalog/strata/internal/bench"
)

// Config is a comparison run.
type Config struct {
	// StrataBin and NATSBin are the server binaries.
	StrataBin, NATSBin string
	// Dir holds the servers' data and logs; empty makes (and removes) a
	// temporary directory.
	Dir string
	// Rounds is how many times every workload runs on every target.
	Rounds int
	// Only, when set, runs just these workloads (ids "a" to "e").
	Only []string
	// Sizes are the record (value) sizes in bytes.
	Sizes []int
	// ProduceRecords and ProduceDuration bound each run of (a), whichever
	// comes first.
	ProduceRecords  int64
	ProduceDuration time.Duration
	// SyncRecords and SyncDuration bound each run of (b).
	SyncRecords  int64
	SyncDuration time.Duration
	// ConsumeRecords is how many stored records (c) reads per run.
	ConsumeRecords int64
	// QueueRecords is how many records (d) receives and acks per run;
	// (d) runs once for each entry of QueueMembers, with that many members.
	QueueRecords int64
	QueueMembers []int
	// QueuePrefetch is the records the Strata members of (d) lease ahead
	// of their receive loops, shared evenly among them (each member's
	// Prefetch); NATS's iterator keeps its 1,000 requested ahead
	// regardless.
	QueuePrefetch int
	// Pause separates runs, so one run's background work (flushes,
	// compaction) does not land in the next.
	Pause time.Duration
	// NATSMaxPending is the asynchronous publish window of a NATS
	// producer; 0 for natsMaxPending.
	NATSMaxPending int
	// StrataArgs are extra flags for `strata server`.
	StrataArgs []string
	// Out receives the tables; Log the progress notes.
	Out, Log io.Writer
	// JSONPath, when set, receives every run's figures; SVGPath the chart.
	JSONPath, SVGPath string
}

// DefaultConfig is what `make bench-compare` runs.
func DefaultConfig() Config {
	return Config{Rounds: 3, Sizes: []int{128, 1024},
		ProduceRecords: 2_000_000, ProduceDuration: 8 * time.Second,
		SyncRecords: 5000, SyncDuration: 5 * time.Second,
		ConsumeRecords: 1_000_000, QueueRecords: 200_000, QueueMembers: []int{1, 4},
		QueuePrefetch: bench.DefaultQueuePrefetch, Pause: time.Second,
		Out: os.Stdout, Log: os.Stderr}
}

// Target names.
const (
	tStrata     = "strata"
	tNATS       = "nats"
	tNATSAlways = "nats-always"
	tNATSNoAck  = "nats-ack-none"
	// (e)'s 3-node clusters.
	tStrataR3     = "strata-r3"
	tNATSR3       = "nats-r3"
	tNATSR3Always = "nats-r3-always"
)

// targetLabels describe the targets in the tables.
var targetLabels = map[string]string{
	tStrata:       "Strata (1 node, ack after fsync)",
	tNATS:         "NATS JetStream (default: fsync every 2 min)",
	tNATSAlways:   "NATS JetStream (sync_interval: always)",
	tNATSNoAck:    "NATS JetStream (pull, AckNone)",
	tStrataR3:     "Strata (3 nodes, RF 3, ack after fsync on a majority)",
	tNATSR3:       "NATS JetStream R3 (default: fsync every 2 min)",
	tNATSR3Always: "NATS JetStream R3 (sync_interval: always)",
}

// Run is one workload run on one target.
type Run struct {
	Workload string        `json:"workload"`
	Size     int           `json:"size"`
	Target   string        `json:"target"`
	Round    int           `json:"round"`
	Load     string        `json:"loadavg"`
	Result   bench.Summary `json:"result"`
	// ServerCPU is the server process's CPU time over the run divided by
	// the run's duration (1.0 = one core busy).
	ServerCPU float64 `json:"server_cpu_cores"`
	Err       string  `json:"error,omitempty"`
}

// env is the running servers and targets.
type env struct {
	cfg   Config
	procs []*server // every process started, each once; close stops them
	// servers are the processes serving each target (three for a
	// cluster; tNATSNoAck shares tNATS's), whose CPU a run measures.
	servers map[string][]*server
	targets map[string]bench.Target
	queues  bool // Strata's target has queue groups
}

func newEnv(cfg Config) *env {
	return &env{cfg: cfg, servers: map[string][]*server{}, targets: map[string]bench.Target{}}
}

// close closes the targets and stops every process, also those of a
// start that failed half-way.
func (e *env) close() error {
	var errs []error
	for _, t := range e.targets {
		errs = append(errs, t.Close())
	}
	errs = append(errs, stopAll(e.procs))
	e.procs = nil
	return errors.Join(errs...)
}

// add records the processes serving target.
func (e *env) add(target string, procs ...*server) {
	e.procs = append(e.procs, procs...)
	e.servers[target] = procs
}

// selected returns the workloads cfg.Only asks for (all by default).
func (e *env) selected() []*workload {
	ws := e.workloads()
	if len(e.cfg.Only) > 0 {
		ws = slices.DeleteFunc(ws, func(w *workload) bool { return !slices.Contains(e.cfg.Only, w.id) })
	}
	return ws
}

// targetsOf returns the targets the workloads run on, so only their
// servers are started (an idle cluster still takes CPU from the runs).
func targetsOf(ws []*workload) map[string]bool {
	need := map[string]bool{}
	for _, w := range ws {
		for _, t := range w.targets {
			need[t] = true
		}
	}
	return need
}

// Compare starts the servers, runs every workload cfg.Rounds times and
// writes the tables (and the JSON and SVG files when asked).
func Compare(ctx context.Context, cfg Config) ([]Run, error) {
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "strata-benchcmp-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	e := newEnv(cfg)
	defer func() {
		if cerr := e.close(); cerr != nil {
			fmt.Fprintln(cfg.Log, "stop servers:", cerr)
		}
	}()
	if err := e.start(ctx, targetsOf(e.selected())); err != nil {
		return nil, err
	}
	ws := e.selected() // again: start found out whether queues exist
	if err := e.setup(ctx, ws); err != nil {
		return nil, err
	}
	var runs []Run
	for round := 1; round <= cfg.Rounds; round++ {
		fmt.Fprintf(cfg.Log, "round %d of %d (load average %s)\n", round, cfg.Rounds, loadAvg())
		for _, w := range ws {
			if w.notRun != "" {
				continue
			}
			for i := range w.targets {
				name := w.targets[(i+round-1)%len(w.targets)] // alternate who goes first
				r := e.runOne(ctx, w, name, round)
				runs = append(runs, r)
				if ctx.Err() != nil {
					return runs, ctx.Err()
				}
			}
		}
	}
	if err := report(cfg, ws, runs); err != nil {
		return runs, err
	}
	return runs, nil
}

// start launches the servers of the needed targets and connects a
// target to each.
func (e *env) start(ctx context.Context, need map[string]bool) error {
	if err := e.startSingle(ctx, need); err != nil {
		return err
	}
	if err := e.startClusters(ctx, need); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(e.servers))
	for _, name := range names {
		var addrs []string
		for _, s := range e.servers[name] {
			addrs = append(addrs, s.addr)
		}
		fmt.Fprintf(e.cfg.Log, "%s: %s\n", name, strings.Join(addrs, ","))
	}
	fmt.Fprintf(e.cfg.Log, "data in %s\n", e.cfg.Dir)
	return nil
}

// startSingle starts the one-node servers of (a) to (d): strata, and
// nats-server with each durability.
func (e *env) startSingle(ctx context.Context, need map[string]bool) error {
	cfg := e.cfg
	if need[tStrata] {
		s, err := startStrata(ctx, cfg.StrataBin, filepath.Join(cfg.Dir, "strata"), nodeArgs(cfg.StrataArgs, "n1")...)
		if err != nil {
			return err
		}
		e.add(tStrata, s)
		st, err := bench.NewStrata(ctx, []string{s.addr})
		if err != nil {
			return err
		}
		e.targets[tStrata] = st
		_, e.queues = any(st).(bench.QueueTarget)
	}
	for _, n := range []struct {
		name, dir string
		always    bool
		ack       jetstream.AckPolicy
	}{{tNATS, "nats", false, jetstream.AckExplicitPolicy}, {tNATSAlways, "nats-always", true, jetstream.AckExplicitPolicy}} {
		if !need[n.name] && (n.name != tNATS || !need[tNATSNoAck]) {
			continue
		}
		s, err := startNATS(ctx, cfg.NATSBin, filepath.Join(cfg.Dir, n.dir), n.always)
		if err != nil {
			return err
		}
		e.add(n.name, s)
		if err := e.connectNATS(n.name, s.addr, n.ack); err != nil {
			return err
		}
	}
	if need[tNATSNoAck] { // same server as tNATS, other consumers
		e.servers[tNATSNoAck] = e.servers[tNATS]
		return e.connectNATS(tNATSNoAck, e.servers[tNATS][0].addr, jetstream.AckNonePolicy)
	}
	return nil
}

// connectNATS makes the target name on a one-node NATS server.
func (e *env) connectNATS(name, addr string, ack jetstream.AckPolicy) error {
	t, err := NewNATS(addr, name, ack)
	if err != nil {
		return err
	}
	t.maxPending = e.cfg.NATSMaxPending
	e.targets[name] = t
	return nil
}

// startClusters starts the 3-node clusters of (e): Strata, whose topics
// get replication factor 3, and NATS with each durability, whose streams
// get 3 replicas.
func (e *env) startClusters(ctx context.Context, need map[string]bool) error {
	cfg := e.cfg
	if need[tStrataR3] {
		nodes, err := startStrataCluster(ctx, cfg.StrataBin, filepath.Join(cfg.Dir, "strata-r3"), cfg.StrataArgs)
		if err != nil {
			return err
		}
		e.add(tStrataR3, nodes...)
		var addrs []string
		for _, n := range nodes {
			addrs = append(addrs, n.addr)
		}
		st, err := bench.NewStrata(ctx, addrs)
		if err != nil {
			return err
		}
		st.ReplicationFactor = clusterNodes
		e.targets[tStrataR3] = st
		if err := settleStrataCluster(ctx, cfg.StrataBin, addrs[0], st); err != nil {
			return err
		}
	}
	for _, name := range []string{tNATSR3, tNATSR3Always} {
		if !need[name] {
			continue
		}
		always := name == tNATSR3Always
		nodes, err := startNATSCluster(ctx, cfg.NATSBin, filepath.Join(cfg.Dir, name), always)
		if err != nil {
			return err
		}
		e.add(name, nodes...)
		t, err := newNATSCluster(nodes, name)
		if err != nil {
			return err
		}
		t.maxPending = cfg.NATSMaxPending
		e.targets[name] = t
	}
	return nil
}

// cpuOf returns the CPU time the processes have used so far.
func cpuOf(servers []*server) time.Duration {
	var d time.Duration
	for _, s := range servers {
		d += cpuTime(s.pid())
	}
	return d
}

// runOne runs one workload on one target and measures the server's CPU.
func (e *env) runOne(ctx context.Context, w *workload, target string, round int) Run {
	r := Run{Workload: w.key(), Size: w.size, Target: target, Round: round, Load: loadAvg()}
	srvs := e.servers[target]
	cpu0, t0 := cpuOf(srvs), time.Now()
	res, err := w.run(ctx, e.targets[target], round)
	cpu1, t1 := cpuOf(srvs), time.Now()
	if res != nil {
		r.Result = res.Summary()
		r.ServerCPU = float64(cpu1-cpu0) / float64(t1.Sub(t0))
	}
	if err != nil {
		r.Err = err.Error()
	}
	line := fmt.Sprintf("  %-6s %5dB %-14s %12s records/s", w.key(), w.size, target, bench.Count(r.Result.RecordsPerSec))
	if l := r.Result.LatencyMs; l != nil {
		line += fmt.Sprintf("  p50 %s ms  p99 %s ms", bench.Millis(l.P50), bench.Millis(l.P99))
	}
	if r.Err != "" {
		line += "  ERROR: " + r.Err
	}
	fmt.Fprintln(e.cfg.Log, line)
	if e.cfg.Pause > 0 {
		select {
		case <-time.After(e.cfg.Pause):
		case <-ctx.Done():
		}
	}
	return r
}

// Replot writes the tables (and the SVG when cfg.SVGPath is set) again
// from the runs a comparison saved with JSONPath, without running anything.
func Replot(cfg Config, jsonPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var runs []Run
	if err := json.Unmarshal(b, &runs); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	cfg.Rounds = 0
	queues := false
	for _, r := range runs {
		queues = queues || strings.HasPrefix(r.Workload, "d")
		cfg.Rounds = max(cfg.Rounds, r.Round)
	}
	e := newEnv(cfg)
	e.queues = queues
	ws := e.selected()
	cfg.JSONPath = ""
	return report(cfg, ws, runs)
}

// writeJSON writes every run to path.
func writeJSON(path string, runs []Run) error {
	b, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
