package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/server"
)

// Logs. Every line a node writes carries node (its id) and component (the
// part that wrote it: agent, broker, grpc, http, kafka, cluster, raft,
// raft-mux, membership, serf, memberlist, segment, tls), and, where they
// apply, raft_group, topic, partition and group (a stream or queue group).
// The level is a slog.LevelVar, so that PUT /api/v1/log-level changes it
// while the node runs.

// NewLogger returns a logger writing to w in format "text" (logfmt) or
// "json" (one object a line), at the level level holds now and later.
func NewLogger(w io.Writer, format string, level *slog.LevelVar) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("agent: log format %q is not text or json", format)
}

// ParseLogLevel parses debug, info, warn or error (any case).
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("agent: log level %q is not debug, info, warn or error", s)
}

// levelName is the name ParseLogLevel reads back.
func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

// logLevelBody is the body of GET and PUT /api/v1/log-level.
type logLevelBody struct {
	Level string `json:"level"`
}

// serveLogLevel answers GET /api/v1/log-level with the level of v and sets
// it on PUT {"level": "debug"}.
func serveLogLevel(v *slog.LevelVar) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if v == nil {
			http.Error(w, "this node's logger has no run-time level (Config.LogLevelVar)", http.StatusNotImplemented)
			return
		}
		if r.Method == http.MethodPut {
			var body logLevelBody
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				http.Error(w, `bad body: want {"level": "debug|info|warn|error"}: `+err.Error(), http.StatusBadRequest)
				return
			}
			l, err := ParseLogLevel(body.Level)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			v.Set(l)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(logLevelBody{Level: levelName(v.Level())})
	})
}

// nodeInfo is strata_node_info: 1, with the node's id and build.
func nodeInfo(id string) prometheus.Collector {
	version, revision := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_node_info",
		Help: "1, with the node's id, version, source revision and Go version as labels.",
		ConstLabels: prometheus.Labels{"node_id": id, "version": version, "revision": revision,
			"go_version": runtime.Version()},
	})
	g.Set(1)
	return g
}

// registry gathers every metric the node serves on /metrics.
func (a *Agent) registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(nodeInfo(a.cfg.NodeID), a.broker.Metrics(), a.rpc,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if a.kafka != nil {
		reg.MustRegister(a.kafka.Metrics())
	}
	return reg
}

// handleObservability registers /metrics and /api/v1/log-level on mux:
// both need, with auth on, a client certificate that may describe the
// cluster, and a change of level one that may administer it. A change is
// refused to cross-origin browser requests.
func (a *Agent) handleObservability(mux *http.ServeMux, sec *server.Security) {
	mux.Handle("/metrics", a.httpGuard(sec, promhttp.HandlerFor(a.registry(), promhttp.HandlerOpts{})))
	level := serveLogLevel(a.cfg.LogLevelVar)
	mux.Handle("GET /api/v1/log-level", a.httpGuard(sec, level))
	mux.Handle("PUT /api/v1/log-level", http.NewCrossOriginProtection().Handler(a.httpGuardOp(sec, auth.OpAdmin, level)))
}
