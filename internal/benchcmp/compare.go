package benchcmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
		ConsumeRecords: 1_000_000, QueueRecords: 200_000, QueueMembers: []int{1, 4}, Pause: time.Second,
		Out: os.Stdout, Log: os.Stderr}
}

// Target names.
const (
	tStrata     = "strata"
	tNATS       = "nats"
	tNATSAlways = "nats-always"
	tNATSNoAck  = "nats-ack-none"
)

// targetLabels describe the targets in the tables.
var targetLabels = map[string]string{
	tStrata:     "Strata (1 node, ack after fsync)",
	tNATS:       "NATS JetStream (default: fsync every 2 min)",
	tNATSAlways: "NATS JetStream (sync_interval: always)",
	tNATSNoAck:  "NATS JetStream (pull, AckNone)",
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
	cfg     Config
	servers map[string]*server // by target name
	targets map[string]bench.Target
	queues  bool // Strata's target has queue groups
}

func (e *env) close() error {
	var errs []error
	for _, t := range e.targets {
		errs = append(errs, t.Close())
	}
	for _, s := range e.servers {
		errs = append(errs, s.stop())
	}
	return errors.Join(errs...)
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
	e, err := start(ctx, cfg)
	if e != nil {
		defer func() {
			if cerr := e.close(); cerr != nil {
				fmt.Fprintln(cfg.Log, "stop servers:", cerr)
			}
		}()
	}
	if err != nil {
		return nil, err
	}
	ws := e.workloads()
	if len(cfg.Only) > 0 {
		ws = slices.DeleteFunc(ws, func(w *workload) bool { return !slices.Contains(cfg.Only, w.id) })
	}
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

// start launches the three servers and connects a target to each.
func start(ctx context.Context, cfg Config) (*env, error) {
	e := &env{cfg: cfg, servers: map[string]*server{}, targets: map[string]bench.Target{}}
	s, err := startStrata(ctx, cfg.StrataBin, filepath.Join(cfg.Dir, "strata"), cfg.StrataArgs...)
	if err != nil {
		return e, err
	}
	e.servers[tStrata] = s
	for _, always := range []bool{false, true} {
		name, dir := tNATS, "nats"
		if always {
			name, dir = tNATSAlways, "nats-always"
		}
		s, err := startNATS(ctx, cfg.NATSBin, filepath.Join(cfg.Dir, dir), always)
		if err != nil {
			return e, err
		}
		e.servers[name] = s
	}
	st, err := bench.NewStrata(ctx, []string{e.servers[tStrata].addr})
	if err != nil {
		return e, err
	}
	e.targets[tStrata] = st
	_, e.queues = any(st).(bench.QueueTarget)
	for name, ack := range map[string]jetstream.AckPolicy{tNATS: jetstream.AckExplicitPolicy,
		tNATSAlways: jetstream.AckExplicitPolicy, tNATSNoAck: jetstream.AckNonePolicy} {
		srv := e.servers[name]
		if name == tNATSNoAck {
			srv = e.servers[tNATS]
			e.servers[tNATSNoAck] = srv
		}
		t, err := NewNATS(srv.addr, name, ack)
		if err != nil {
			return e, err
		}
		t.maxPending = cfg.NATSMaxPending
		e.targets[name] = t
	}
	delete(e.servers, tNATSNoAck) // shares tNATS's process; stopped once
	fmt.Fprintf(cfg.Log, "strata %s, nats %s, nats (sync always) %s; data in %s\n",
		e.servers[tStrata].addr, e.servers[tNATS].addr, e.servers[tNATSAlways].addr, cfg.Dir)
	return e, nil
}

// serverOf returns the process serving a target.
func (e *env) serverOf(target string) *server {
	if target == tNATSNoAck {
		return e.servers[tNATS]
	}
	return e.servers[target]
}

// runOne runs one workload on one target and measures the server's CPU.
func (e *env) runOne(ctx context.Context, w *workload, target string, round int) Run {
	r := Run{Workload: w.key(), Size: w.size, Target: target, Round: round, Load: loadAvg()}
	srv := e.serverOf(target)
	cpu0, t0 := cpuTime(srv.pid()), time.Now()
	res, err := w.run(ctx, e.targets[target], round)
	cpu1, t1 := cpuTime(srv.pid()), time.Now()
	if res != nil {
		r.Result = res.Summary()
		r.ServerCPU = float64(cpu1-cpu0) / float64(t1.Sub(t0))
	}
	if err != nil {
		r.Err = err.Error()
	}
	line := fmt.Sprintf("  %-4s %5dB %-14s %12s records/s", w.key(), w.size, target, bench.Count(r.Result.RecordsPerSec))
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
	e := &env{cfg: cfg}
	cfg.Rounds = 0
	for _, r := range runs {
		e.queues = e.queues || strings.HasPrefix(r.Workload, "d")
		cfg.Rounds = max(cfg.Rounds, r.Round)
	}
	ws := e.workloads()
	if len(cfg.Only) > 0 {
		ws = slices.DeleteFunc(ws, func(w *workload) bool { return !slices.Contains(cfg.Only, w.id) })
	}
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
