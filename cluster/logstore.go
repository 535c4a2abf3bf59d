package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/stratalog/strata/cluster/raftlog"
)

// Values of GroupConfig.LogStore.
const (
	// LogStoreWAL keeps a group's raft log in a raftlog.Store in
	// <Dir>/raftlog/: one fdatasync per StoreLogs, segments removed on
	// compaction. The default.
	LogStoreWAL = "wal"
	// LogStoreBolt keeps a group's raft log in raft.db with the stable store
	// (raft-boltdb/v2), as before raftlog existed.
	LogStoreBolt = "bolt"
)

// raftLogDir is the raftlog store's directory inside a group's Dir.
const raftLogDir = "raftlog"

// validLogStore checks GroupConfig.LogStore; empty means LogStoreWAL.
func validLogStore(s string) error {
	switch s {
	case "", LogStoreWAL, LogStoreBolt:
		return nil
	}
	return fmt.Errorf("LogStore %q is neither %q nor %q", s, LogStoreWAL, LogStoreBolt)
}

// openLogStore opens the raft log store cfg.LogStore names. The closer is
// nil for bolt, which the group closes as its stable store. A group's log
// is never moved between stores, and never silently left behind: a raft.db
// that holds log entries while raftlog/ does not exist (a group written
// with LogStoreBolt) is refused for LogStoreWAL, and raftlog/ is refused
// for LogStoreBolt. Either error wraps ErrInvalidConfig.
func openLogStore(cfg GroupConfig, bolt *raftboltdb.BoltStore, logger *slog.Logger) (raft.LogStore, io.Closer, error) {
	dir := filepath.Join(cfg.Dir, raftLogDir)
	_, statErr := os.Stat(dir)
	if statErr != nil && !errors.Is(statErr, os.ErrNotExist) {
		return nil, nil, statErr
	}
	exists := statErr == nil
	if cfg.LogStore == LogStoreBolt {
		if exists {
			return nil, nil, fmt.Errorf("%w: group %q: LogStore %q, but the group's raft log is in %s; use LogStore %q",
				ErrInvalidConfig, cfg.Name, LogStoreBolt, dir, LogStoreWAL)
		}
		return bolt, nil, nil
	}
	if !exists {
		last, err := bolt.LastIndex()
		if err != nil {
			return nil, nil, fmt.Errorf("read raft.db: %w", err)
		}
		if last > 0 {
			first, _ := bolt.FirstIndex()
			return nil, nil, fmt.Errorf("%w: group %q: raft.db holds raft log entries %d to %d and %s does not exist: "+
				"the group was written with LogStore %q; use it, or remove the group's directory", ErrInvalidConfig,
				cfg.Name, first, last, dir, LogStoreBolt)
		}
	}
	rc := raftlog.DefaultConfig()
	rc.NoSync = cfg.NoSync
	rc.Logger = logger
	store, err := raftlog.Open(dir, rc)
	if err != nil {
		return nil, nil, err
	}
	return store, store, nil
}
