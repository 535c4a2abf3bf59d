package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrDiskFull is returned for a produce (or a topic creation) refused
// because the file system that holds the node's data has less free space
// than DiskConfig.MinFreeBytes. Nothing was written; the request may be
// retried once space is freed (retention, or an operator). It lives here
// rather than in errors.go so that the guard is one file.
var ErrDiskFull = errors.New("broker: disk full")

// DiskConfig configures the free-space guard of the produce path.
//
// Why a guard: raft's log store fails for good on a write error (what
// reached the disk is unknown until it is reopened), and the data FSM
// fences a partition whose segment log failed under a committed entry
// until the node restarts (offsets after it depend on it). So ENOSPC must
// not be met on the write path at all: produces are refused, retryably,
// while free space is below a margin, and served again as soon as it is
// back, with no restart. Small writes (queue commands, metadata, offsets)
// are not refused: they are what lets consumers make progress, and the
// margin holds them.
type DiskConfig struct {
	// MinFreeBytes is the free space, in bytes, below which produces are
	// refused with ErrDiskFull. The broker counts its own produces against
	// the last measurement, so the margin must cover what the guard does
	// not see: other writers between two measurements, the raft log's
	// preallocated next segment (64 MiB a group, given up when it does not
	// fit), the index files of a segment roll, queue commands, metadata and
	// snapshots. 0 turns the guard off. Default 64 MiB.
	MinFreeBytes int64
	// CheckInterval is the longest a measurement is trusted: a produce
	// after it measures again (one statfs), the others read the last
	// measurement. It is also how long a produce may be refused after
	// space came back. Default 100 ms.
	CheckInterval time.Duration
}

// DefaultDiskConfig returns the defaults: 64 MiB, measured every 100 ms.
func DefaultDiskConfig() DiskConfig {
	return DiskConfig{MinFreeBytes: 64 << 20, CheckInterval: 100 * time.Millisecond}
}

// Validate checks the configuration.
func (c DiskConfig) Validate() error {
	if c.MinFreeBytes < 0 {
		return fmt.Errorf("%w: disk min free bytes %d < 0", ErrInvalidConfig, c.MinFreeBytes)
	}
	if c.MinFreeBytes > 0 && c.CheckInterval <= 0 {
		return fmt.Errorf("%w: disk check interval %v must be positive", ErrInvalidConfig, c.CheckInterval)
	}
	return nil
}

// diskGuard answers "is there room for a produce" with a monotonic clock
// read and three atomic operations; one caller at a time measures again
// (statfs) once the last measurement is older than the interval.
type diskGuard struct {
	dir      string
	minFree  int64
	interval time.Duration
	log      *slog.Logger
	// statfs returns the bytes available to the process on dir's file
	// system; tests replace it.
	statfs func(dir string) (int64, error)
	// since returns the monotonic time elapsed since the guard was made;
	// tests replace it.
	since func() time.Duration

	mu      sync.Mutex   // held by the one caller measuring
	free    atomic.Int64 // bytes free at the last measurement, less what was accepted since
	due     atomic.Int64 // since() at which to measure again, ns
	statErr bool         // the last statfs failed (logged once); guarded by mu
}

// newDiskGuard returns the guard of the file system holding dir, or nil
// (no checks) when cfg turns it off.
func newDiskGuard(cfg DiskConfig, dir string, lg *slog.Logger) *diskGuard {
	if cfg.MinFreeBytes <= 0 || dir == "" {
		return nil
	}
	start := time.Now()
	g := &diskGuard{
		dir: dir, minFree: cfg.MinFreeBytes, interval: cfg.CheckInterval, log: lg,
		statfs: statfsFree,
		since:  func() time.Duration { return time.Since(start) },
	}
	// Unmeasured: allow. The first check measures (due is 0), and callers
	// that race with it must not be refused on a zero.
	g.free.Store(math.MaxInt64)
	return g
}

// check returns an ErrDiskFull error when the file system has less than
// the minimum free, by the last measurement less what the produces accepted
// since will write (n bytes each, twice: raft's log and the segment log),
// so that the broker's own writes cannot run through the margin between
// two measurements however fast they come. A nil guard allows all.
func (g *diskGuard) check(n int) error {
	if g == nil {
		return nil
	}
	if now := g.since(); int64(now) >= g.due.Load() && g.mu.TryLock() {
		g.measureLocked(now)
		g.mu.Unlock()
	}
	if free := g.free.Load(); free < g.minFree {
		return fmt.Errorf("%w: %s free in %s, need %s", ErrDiskFull, formatBytes(max(free, 0)), g.dir, formatBytes(g.minFree))
	}
	g.free.Add(-2 * int64(n))
	return nil
}

// measureLocked measures the free space again. A failing statfs allows
// produces (the guard must not stop a node that could write) and is
// logged once until it succeeds again. Caller must hold g.mu.
func (g *diskGuard) measureLocked(now time.Duration) {
	free, err := g.statfs(g.dir)
	switch {
	case err != nil:
		free = math.MaxInt64
		if !g.statErr {
			g.log.Warn("broker: cannot measure free disk space; not guarding produces", "dir", g.dir, "err", err)
		}
		g.statErr = true
	case g.statErr:
		g.statErr = false
		g.log.Info("broker: measuring free disk space again", "dir", g.dir)
	}
	if prev := g.free.Swap(free); (prev < g.minFree) != (free < g.minFree) && err == nil && prev != math.MaxInt64 {
		if free < g.minFree {
			g.log.Warn("broker: disk nearly full; refusing produces", "dir", g.dir, "free", free, "min_free", g.minFree)
		} else {
			g.log.Info("broker: disk space back; accepting produces", "dir", g.dir, "free", free)
		}
	}
	g.due.Store(int64(now + g.interval))
}

// formatBytes writes n in MiB or GiB with one decimal ("3.1 MiB"), for
// error messages an operator reads.
func formatBytes(n int64) string {
	unit, div := "MiB", float64(1<<20)
	if n >= 1<<30 {
		unit, div = "GiB", float64(1<<30)
	}
	s := strconv.FormatFloat(float64(n)/div, 'f', 1, 64)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + " " + unit
}
