package cluster

import (
	"context"
	"io"
	"log"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// hashicorp/raft logs through go-hclog. It is chatty: every election,
// every pipeline start and every snapshot is logged at Info. The adapter
// below shifts hclog's levels down so that raft's Info lands on slog's
// Debug, and raft's Debug and Trace below it, while Warn and Error keep
// their meaning.
const (
	slogLevelRaftTrace = slog.LevelDebug - 8
	slogLevelRaftDebug = slog.LevelDebug - 4
	slogLevelRaftInfo  = slog.LevelDebug
)

// newHCLogger returns an hclog.Logger that writes to logger under the given
// name. A nil logger discards everything at no cost.
func newHCLogger(logger *slog.Logger, name string) hclog.Logger {
	if logger == nil {
		return hclog.NewNullLogger()
	}
	return &hclogAdapter{
		logger: logger,
		name:   name,
		level:  new(atomic.Int32),
	}
}

// hclogAdapter implements hclog.Logger on top of *slog.Logger. Its level
// filter (SetLevel) is shared by all loggers derived with With and Named, as
// hclog's own implementation does; by default it passes everything and lets
// the slog handler decide.
type hclogAdapter struct {
	logger  *slog.Logger
	name    string
	implied []any
	level   *atomic.Int32 // hclog.Level; NoLevel (0) means no extra filter
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// slogLevel maps an hclog level onto slog. The second result is false for
// levels that must not be logged (Off).
func slogLevel(level hclog.Level) (slog.Level, bool) {
	switch level {
	case hclog.Trace:
		return slogLevelRaftTrace, true
	case hclog.Debug:
		return slogLevelRaftDebug, true
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		return slogLevelRaftInfo, true
	case hclog.Warn:
		return slog.LevelWarn, true
	case hclog.Error:
		return slog.LevelError, true
	default: // hclog.Off
		return 0, false
	}
}

func (a *hclogAdapter) enabled(level hclog.Level) (slog.Level, bool) {
	if floor := hclog.Level(a.level.Load()); floor != hclog.NoLevel && level < floor {
		return 0, false
	}
	sl, ok := slogLevel(level)
	if !ok {
		return 0, false
	}
	return sl, a.logger.Enabled(context.Background(), sl)
}

// Log implements hclog.Logger.
func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	sl, ok := a.enabled(level)
	if !ok {
		return
	}
	all := make([]any, 0, 2+len(a.implied)+len(args))
	if a.name != "" {
		all = append(all, "component", a.name)
	}
	all = append(all, a.implied...)
	all = append(all, args...)
	for i := 0; i+1 < len(all); i += 2 {
		if k, ok := all[i].(string); ok && k == "node" {
			all[i] = "raft_" + k // raft's own "node" is not the node's id attribute
		}
	}
	a.logger.Log(context.Background(), sl, msg, all...)
}

// Trace implements hclog.Logger.
func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }

// Debug implements hclog.Logger.
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }

// Info implements hclog.Logger.
func (a *hclogAdapter) Info(msg string, args ...any) { a.Log(hclog.Info, msg, args...) }

// Warn implements hclog.Logger.
func (a *hclogAdapter) Warn(msg string, args ...any) { a.Log(hclog.Warn, msg, args...) }

// Error implements hclog.Logger.
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

// IsTrace implements hclog.Logger.
func (a *hclogAdapter) IsTrace() bool { _, ok := a.enabled(hclog.Trace); return ok }

// IsDebug implements hclog.Logger.
func (a *hclogAdapter) IsDebug() bool { _, ok := a.enabled(hclog.Debug); return ok }

// IsInfo implements hclog.Logger.
func (a *hclogAdapter) IsInfo() bool { _, ok := a.enabled(hclog.Info); return ok }

// IsWarn implements hclog.Logger.
func (a *hclogAdapter) IsWarn() bool { _, ok := a.enabled(hclog.Warn); return ok }

// IsError implements hclog.Logger.
func (a *hclogAdapter) IsError() bool { _, ok := a.enabled(hclog.Error); return ok }

// ImpliedArgs implements hclog.Logger.
func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

// With implements hclog.Logger.
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(append([]any(nil), a.implied...), args...)
	return &c
}

// Name implements hclog.Logger.
func (a *hclogAdapter) Name() string { return a.name }

// Named implements hclog.Logger.
func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

// ResetNamed implements hclog.Logger.
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

// SetLevel implements hclog.Logger.
func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level.Store(int32(level)) }

// GetLevel implements hclog.Logger.
func (a *hclogAdapter) GetLevel() hclog.Level { return hclog.Level(a.level.Load()) }

// StandardLogger implements hclog.Logger. Lines written to it are logged at
// raft's Info level (slog Debug); level inference is not supported.
func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.logger.With(append([]any{"component", a.name}, a.implied...)...).Handler(), slogLevelRaftInfo)
}

// StandardWriter implements hclog.Logger.
func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(opts).Writer()
}
