package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// PartKey names a partition cluster-wide: the topic's unique id and the
// partition's index.
type PartKey struct {
	TopicID   uint64 `json:"topic_id"`
	Partition int32  `json:"partition"`
}

// Partition is one partition held by a data group on this node.
type Partition struct {
	Key    PartKey
	Topic  string
	Config topic.Config
	// Log is the partition's segment log, read-only: only the FSM writes
	// it.
	Log LogView

	failed atomic.Bool
	// producers is touched only by the FSM goroutine (Apply, Snapshot,
	// Restore), which raft never runs concurrently.
	producers map[int64]*producerState
	// queues is the partition's queue-group state (data_queue.go).
	queues queue.Set
}

// Failed reports whether the partition's storage failed under a committed
// write (see ErrPartitionFailed).
func (p *Partition) Failed() bool { return p.failed.Load() }

// ProduceResult is the data FSM's answer to a produce command.
type ProduceResult struct {
	BaseOffset int64
	Duplicate  bool
}

// DataFSMConfig configures a data group's state machine.
type DataFSMConfig struct {
	// Dir holds one directory of segments per partition.
	Dir string
	// Segment returns the segment-log configuration of a partition from
	// its topic's configuration. Its Fsync must be segment.FsyncNever: raft's
	// log is the write-ahead log, and the logs are fsynced at snapshots.
	Segment func(topic.Config) segment.Config
	// SnapDir is where snapshots keep their segment files (hard links);
	// it must be on the file system of Dir. Empty: snapshots hold the
	// manifest only (a replica that needs one cannot get the data).
	SnapDir string
	Logger  *slog.Logger
}

// DataFSM is the state machine of a data raft group: the partitions it
// holds, their segment logs and their idempotent-producer state.
//
// Durability: an entry is durable once raft commits it (raft's log store
// fsyncs). Apply appends to the segment logs without fsync; Snapshot
// fsyncs them and records each partition's high watermark, so that raft may
// compact its log up to that point. Restore truncates every log back to the
// snapshot's high watermark (or, where retention has deleted segments past
// it, empties the log to start there), after which raft replays the entries
// that follow the snapshot: each entry is applied exactly once on top of
// the state it was first applied to, so offsets come out the same.
type DataFSM struct {
	cfg DataFSMConfig
	log *slog.Logger

	mu    sync.RWMutex // guards parts (membership; partitions lock themselves)
	parts map[PartKey]*Partition

	applied atomic.Uint64
	bufPool sync.Pool
}

// NewDataFSM returns a data FSM over cfg.Dir with no partitions: partitions
// appear through create commands or a snapshot restore.
func NewDataFSM(cfg DataFSMConfig) (*DataFSM, error) {
	if cfg.Dir == "" || cfg.Segment == nil {
		return nil, errors.New("cluster: data FSM needs a directory and a segment config")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: data FSM dir: %w", err)
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &DataFSM{cfg: cfg, log: l, parts: map[PartKey]*Partition{}}, nil
}

// Partition returns the partition, or nil.
func (f *DataFSM) Partition(k PartKey) *Partition {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.parts[k]
}

// Partitions returns every partition of the group.
func (f *DataFSM) Partitions() []*Partition {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*Partition, 0, len(f.parts))
	for _, p := range f.parts {
		out = append(out, p)
	}
	return out
}

// AppliedIndex is the raft index of the last entry applied.
func (f *DataFSM) AppliedIndex() uint64 { return f.applied.Load() }

// Command types of the data FSM.
const (
	dataCmdProduce byte = 1
	dataCmdCreate  byte = 2
	dataCmdDelete  byte = 3
	dataCmdQueue   byte = 4 // data_queue.go
)

// produceHeaderLen is type (1) + topic id (8) + partition (4).
const produceHeaderLen = 13

// ProduceCmd encodes a produce command: the batch follows a 13-byte header,
// so the FSM reads it without decoding anything but the batch header.
func ProduceCmd(k PartKey, batch []byte) []byte {
	b := make([]byte, produceHeaderLen+len(batch))
	putProduceHeader(b, k)
	copy(b[produceHeaderLen:], batch)
	return b
}

// ProduceExt returns the raft log Extensions of a produce whose entry's
// Data is the batch itself, as the client sent it (Group.ApplyLogAsync):
// the 13-byte header goes beside the batch, so the batch is not copied
// into a command. The FSM applies both forms the same way.
func ProduceExt(k PartKey) []byte {
	b := make([]byte, produceHeaderLen)
	putProduceHeader(b, k)
	return b
}

func putProduceHeader(b []byte, k PartKey) {
	b[0] = dataCmdProduce
	binary.BigEndian.PutUint64(b[1:], k.TopicID)
	binary.BigEndian.PutUint32(b[9:], uint32(k.Partition))
}

type partitionCmd struct {
	Key    PartKey      `json:"key"`
	Topic  string       `json:"topic"`
	Config topic.Config `json:"config"`
}

// CreatePartitionCmd encodes the creation of a partition in a data group.
// Creating a partition that exists is a no-op.
func CreatePartitionCmd(topic string, k PartKey, cfg topic.Config) []byte {
	return append([]byte{dataCmdCreate}, mustJSON(partitionCmd{Key: k, Topic: topic, Config: cfg})...)
}

// DeletePartitionCmd encodes the removal of a partition and its data.
func DeletePartitionCmd(k PartKey) []byte {
	return append([]byte{dataCmdDelete}, mustJSON(partitionCmd{Key: k})...)
}

// Apply implements raft.FSM.
func (f *DataFSM) Apply(l *raft.Log) any {
	defer f.applied.Store(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Extensions) > 0 {
		if len(l.Extensions) != produceHeaderLen || l.Extensions[0] != dataCmdProduce {
			panic(fmt.Sprintf("cluster: unknown extensions (%d bytes) at index %d", len(l.Extensions), l.Index))
		}
		return f.applyProduce(l, l.Extensions, l.Data)
	}
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("cluster: empty data command at index %d", l.Index))
	}
	switch l.Data[0] {
	case dataCmdProduce:
		if len(l.Data) < produceHeaderLen {
			panic(fmt.Sprintf("cluster: short produce command at index %d", l.Index))
		}
		return f.applyProduce(l, l.Data[:produceHeaderLen], l.Data[produceHeaderLen:])
	case dataCmdQueue:
		return f.applyQueue(l)
	case dataCmdCreate, dataCmdDelete:
		var c partitionCmd
		if err := json.Unmarshal(l.Data[1:], &c); err != nil {
			panic(fmt.Sprintf("cluster: undecodable data command at index %d: %v", l.Index, err))
		}
		if l.Data[0] == dataCmdCreate {
			return f.createPartition(c)
		}
		return f.deletePartition(c.Key)
	default:
		panic(fmt.Sprintf("cluster: unknown data command %d at index %d", l.Data[0], l.Index))
	}
}

// applyProduce appends batch to the partition hdr (a produce header)
// names.
func (f *DataFSM) applyProduce(l *raft.Log, hdr, batch []byte) any {
	k := PartKey{
		TopicID:   binary.BigEndian.Uint64(hdr[1:]),
		Partition: int32(binary.BigEndian.Uint32(hdr[9:])),
	}
	p := f.Partition(k)
	if p == nil {
		return fmt.Errorf("%w: topic id %d partition %d", ErrUnknownPartition, k.TopicID, k.Partition)
	}
	if p.failed.Load() {
		return fmt.Errorf("%w: %s/%d", ErrPartitionFailed, p.Topic, k.Partition)
	}
	h, err := segment.ParseBatchHeader(batch)
	if err != nil {
		// The leader checked the batch before raft; a batch that fails here
		// fails the same way on every replica.
		return err
	}
	idempotent := h.ProducerID >= 0 && h.BaseSequence >= 0
	if idempotent {
		switch v, off, exp := checkSeq(p.producers, h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.RecordCount); v {
		case seqDuplicate:
			return ProduceResult{BaseOffset: off, Duplicate: true}
		case seqOutOfOrder:
			return &topic.SequenceError{ProducerID: h.ProducerID, Got: h.BaseSequence, Expected: exp}
		case seqFenced:
			return &topic.FencedError{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, Current: int16(exp)}
		}
	}
	// The segment log writes the base offset into the batch, and raft's log
	// cache may still hand these bytes to a follower: append a copy. (Writing
	// the 8 bytes apart instead, to save the copy, measured 13% slower in
	// BenchmarkBrokerProduceAsync: the pwrite itself got that much dearer,
	// likely as the kernel then reads the batch from cold memory.)
	buf := f.getBuf(len(batch))
	copy(buf, batch)
	base, err := p.log().Append(buf)
	f.bufPool.Put(&buf)
	if err != nil {
		// Raft has committed this entry, so every later offset depends on
		// it: stop the partition rather than let offsets diverge. A restart
		// replays raft's log into it.
		p.failed.Store(true)
		f.log.Error("partition storage failed; fenced until restart",
			"topic", p.Topic, "partition", k.Partition, "index", l.Index, "err", err)
		return fmt.Errorf("%w: %s/%d: %w", ErrPartitionFailed, p.Topic, k.Partition, err)
	}
	if idempotent {
		recordSeq(p.producers, h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.RecordCount, base)
	}
	return ProduceResult{BaseOffset: base}
}

func (f *DataFSM) getBuf(n int) []byte {
	if bp, ok := f.bufPool.Get().(*[]byte); ok && cap(*bp) >= n {
		return (*bp)[:n]
	}
	return make([]byte, n)
}

func (f *DataFSM) partitionDir(topic string, k PartKey) string {
	return filepath.Join(f.cfg.Dir, fmt.Sprintf("%s-%d-%d", topic, k.TopicID, k.Partition))
}

// createPartition creates an empty partition. Whatever a directory of that
// name held is stale (its creation is being replayed), so it is removed.
func (f *DataFSM) createPartition(c partitionCmd) any {
	if f.Partition(c.Key) != nil {
		return nil
	}
	dir := f.partitionDir(c.Topic, c.Key)
	if err := os.RemoveAll(dir); err != nil {
		panic(fmt.Sprintf("cluster: clear partition dir %s: %v", dir, err))
	}
	lg, err := segment.Open(dir, f.cfg.Segment(c.Config))
	if err != nil {
		panic(fmt.Sprintf("cluster: create partition %s: %v", dir, err))
	}
	p := &Partition{Key: c.Key, Topic: c.Topic, Config: c.Config, Log: LogView{lg}, producers: map[int64]*producerState{}}
	f.mu.Lock()
	f.parts[c.Key] = p
	f.mu.Unlock()
	return nil
}

func (f *DataFSM) deletePartition(k PartKey) any {
	f.mu.Lock()
	p := f.parts[k]
	delete(f.parts, k)
	f.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.log().Close(); err != nil {
		f.log.Warn("close deleted partition", "topic", p.Topic, "partition", k.Partition, "err", err)
	}
	if err := os.RemoveAll(p.Log.Dir()); err != nil {
		f.log.Warn("remove deleted partition", "dir", p.Log.Dir(), "err", err)
	}
	return nil
}

// manifest is a data group's snapshot: the small state, and the list of
// segment files that hold each partition's records up to its high
// watermark (see snapshot_store.go for how they are kept and streamed).
type manifest struct {
	Index      uint64          `json:"index"`
	Partitions []manifestEntry `json:"partitions"`
	// Files are the snapshot's segment files; Dir, set when the snapshot is
	// opened on this node, is where they are.
	Files []snapFile `json:"files,omitempty"`
	Dir   string     `json:"dir,omitempty"`
}

type manifestEntry struct {
	Key           PartKey                  `json:"key"`
	Topic         string                   `json:"topic"`
	Config        topic.Config             `json:"config"`
	StartOffset   int64                    `json:"start_offset"`
	HighWatermark int64                    `json:"high_watermark"`
	Producers     map[int64]*producerState `json:"producers"`
	Queues        []queue.Snapshot         `json:"queues,omitempty"`
}

// Snapshot implements raft.FSM. Raft calls it on the FSM goroutine, so the
// captured state is exactly the state after the last applied entry.
func (f *DataFSM) Snapshot() (raft.FSMSnapshot, error) {
	m := &manifest{Index: f.applied.Load()}
	var logs []*segment.Log
	var segs [][]segment.SegmentInfo
	for _, p := range f.Partitions() {
		m.Partitions = append(m.Partitions, manifestEntry{
			Key: p.Key, Topic: p.Topic, Config: p.Config,
			StartOffset: p.Log.StartOffset(), HighWatermark: p.Log.HighWatermark(),
			Producers: cloneProducers(p.producers),
			Queues:    p.queues.Snapshot(),
		})
		logs = append(logs, p.log())
		// Appends run on this goroutine only, so the segments and their
		// sizes are exactly those of the high watermark above.
		segs = append(segs, p.Log.Segments())
	}
	return &dataSnapshot{m: m, logs: logs, segs: segs, snapDir: f.cfg.SnapDir}, nil
}

type dataSnapshot struct {
	m       *manifest
	logs    []*segment.Log
	segs    [][]segment.SegmentInfo // per partition, as of the snapshot
	snapDir string
}

// Persist fsyncs every partition's log (the checkpoint raft compacts
// behind), links the segment files into the snapshot's directory, and then
// writes the manifest.
func (s *dataSnapshot) Persist(sink raft.SnapshotSink) error {
	for _, lg := range s.logs {
		if err := lg.Sync(); err != nil && !errors.Is(err, segment.ErrClosed) {
			return errors.Join(fmt.Errorf("cluster: checkpoint %s: %w", lg.Dir(), err), sink.Cancel())
		}
	}
	if s.snapDir != "" {
		if err := s.linkFiles(filepath.Join(s.snapDir, sink.ID())); err != nil {
			return errors.Join(err, sink.Cancel())
		}
		hdr, err := encodeManifest(s.m)
		if err != nil {
			return errors.Join(err, sink.Cancel())
		}
		if _, err := sink.Write(hdr); err != nil {
			return errors.Join(fmt.Errorf("cluster: write manifest: %w", err), sink.Cancel())
		}
		return sink.Close()
	}
	if err := json.NewEncoder(sink).Encode(s.m); err != nil {
		return errors.Join(fmt.Errorf("cluster: write manifest: %w", err), sink.Cancel())
	}
	return sink.Close()
}

func (s *dataSnapshot) Release() {}

// Restore implements raft.FSM: it adopts the partitions the manifest names,
// truncates each log back to the manifest's high watermark (raft replays
// what follows; a log that retention has cut past that point is emptied to
// start there), replaces a log that holds less than the snapshot (a new
// or far-behind replica) or that cannot be opened with the snapshot's
// segment files, and removes partition directories the manifest does not
// name. A partition it cannot restore fails it: raft then cannot start.
func (f *DataFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m, src, err := openSnapshotStream(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	old := f.parts
	f.parts = map[PartKey]*Partition{}
	f.mu.Unlock()
	var errs []error
	for _, p := range old {
		errs = append(errs, p.log().Close())
	}
	keep := map[string]bool{}
	for _, e := range m.Partitions {
		dir := f.partitionDir(e.Topic, e.Key)
		keep[filepath.Base(dir)] = true
		p, err := f.restorePartition(dir, e, src)
		if err != nil {
			// raft reports only that no snapshot could be restored.
			f.log.Error("cannot restore partition", "dir", dir, "snapshot_index", m.Index, "err", err)
			errs = append(errs, err)
			continue
		}
		f.mu.Lock()
		f.parts[e.Key] = p
		f.mu.Unlock()
	}
	ents, err := os.ReadDir(f.cfg.Dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, de := range ents {
		if !keep[de.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(f.cfg.Dir, de.Name())))
		}
	}
	f.applied.Store(m.Index)
	return errors.Join(errs...)
}

func (f *DataFSM) restorePartition(dir string, e manifestEntry, src *snapSource) (*Partition, error) {
	lg, err := segment.Open(dir, f.restoreSegmentConfig(e))
	if err != nil && src.has(filepath.Base(dir)) {
		f.log.Warn("partition unreadable; installing it from the snapshot", "dir", dir, "err", err)
		lg, err = f.installPartition(dir, e, src, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: restore partition %s: %w", dir, err)
	}
	hw := lg.HighWatermark()
	if hw < e.HighWatermark && src.has(filepath.Base(dir)) {
		f.log.Info("partition behind the snapshot; installing the snapshot's segments",
			"dir", dir, "local_hw", hw, "snapshot_hw", e.HighWatermark)
		if lg, err = f.installPartition(dir, e, src, lg); err != nil {
			return nil, fmt.Errorf("cluster: restore partition %s: %w", dir, err)
		}
		hw = lg.HighWatermark()
	}
	switch {
	case hw < e.HighWatermark:
		return nil, errors.Join(fmt.Errorf("cluster: partition %s holds offsets up to %d but its checkpoint says %d: data lost",
			dir, hw, e.HighWatermark), lg.Close())
	case e.HighWatermark < lg.StartOffset():
		// Retention deleted segments past the checkpoint, so Truncate cannot
		// go back to it. Nothing below the start offset is here anyway: an
		// empty log at the checkpoint is the snapshot's state less what
		// retention removed, and raft's replay appends the rest again at
		// the same offsets (retention removes it again later).
		f.log.Info("partition log starts past the snapshot's high watermark (retention); emptying it to start there",
			"dir", dir, "start_offset", lg.StartOffset(), "local_hw", hw, "snapshot_hw", e.HighWatermark)
		if err := lg.Reset(e.HighWatermark); err != nil {
			return nil, errors.Join(fmt.Errorf("cluster: reset %s to %d: %w", dir, e.HighWatermark, err), lg.Close())
		}
	case hw > e.HighWatermark:
		if err := lg.Truncate(e.HighWatermark); err != nil {
			return nil, errors.Join(fmt.Errorf("cluster: truncate %s to %d: %w", dir, e.HighWatermark, err), lg.Close())
		}
	}
	// Make the log durable up to the snapshot's high watermark before the
	// next open trusts it that far (restoreSegmentConfig): a snapshot
	// received from the leader over a local log that already ended there
	// was neither installed nor truncated, so nothing fsynced it.
	if err := lg.Sync(); err != nil {
		return nil, errors.Join(fmt.Errorf("cluster: sync %s: %w", dir, err), lg.Close())
	}
	prods := e.Producers
	if prods == nil {
		prods = map[int64]*producerState{}
	}
	p := &Partition{Key: e.Key, Topic: e.Topic, Config: e.Config, Log: LogView{lg}, producers: prods}
	if err := p.queues.Restore(e.Queues); err != nil {
		return nil, errors.Join(fmt.Errorf("cluster: restore %s: %w", dir, err), lg.Close())
	}
	return p, nil
}

// restoreSegmentConfig is the segment config to open a partition with on
// restore: the snapshot's Persist fsynced its log up to the high watermark,
// so segment recovery must report a fault below it as corruption instead
// of cutting it off as a torn tail.
func (f *DataFSM) restoreSegmentConfig(e manifestEntry) segment.Config {
	c := f.cfg.Segment(e.Config)
	c.DurableOffset = e.HighWatermark
	return c
}

// Close closes every partition's log.
func (f *DataFSM) Close() error {
	f.mu.Lock()
	parts := f.parts
	f.parts = map[PartKey]*Partition{}
	f.mu.Unlock()
	var errs []error
	for _, p := range parts {
		errs = append(errs, p.log().Close())
	}
	return errors.Join(errs...)
}
