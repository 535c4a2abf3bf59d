package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/fileutil"
)

// A data group's snapshot is a manifest (the small state: partitions, high
// watermarks, producer state) plus the segment files of every partition at
// that point. Taking one costs O(segments), not O(bytes): the FSM hard-links
// the .log files into snapdata/<snapshot id>/ (see DataFSM.Snapshot), so
// retention or later appends cannot change what the snapshot references,
// and only the manifest goes into raft's FileSnapshotStore. Only when raft
// sends the snapshot to a follower (new, or behind the leader's log
// compaction) are the files' bytes streamed, and the follower's sink writes
// them into its own snapdata/<id>/ before its FSM restores from them.
//
// The stream (what Open returns and what travels to a follower):
//
//	8 bytes   snapMagic "STRSNAP1"
//	4 bytes   manifest length n, big endian
//	n bytes   the manifest, JSON; each file has Inline = true
//	          each file's first Size bytes, in manifest order
//
// In the FileSnapshotStore the manifest is stored the same way with
// Inline = false (the files are in snapdata) and nothing after it. Open
// sets the manifest's Dir to the local snapdata/<id>, so a restore on this
// node links the files from there and need not read the stream's bytes.
// A stream that does not start with snapMagic is a manifest of the first
// format (JSON only, no files).

const (
	snapMagic = "STRSNAP1"
	// maxManifestBytes bounds a manifest read from a stream.
	maxManifestBytes = 256 << 20
)

// snapFile is one segment file of a snapshot, relative to its snapdata dir.
type snapFile struct {
	Path   string `json:"path"` // <partition dir>/<base>.log
	Size   int64  `json:"size"`
	Inline bool   `json:"inline,omitempty"`
}

// dataSnapshotStore wraps raft's FileSnapshotStore for a data group.
type dataSnapshotStore struct {
	fs  *raft.FileSnapshotStore
	dir string // snapdata
}

func newDataSnapshotStore(fs *raft.FileSnapshotStore, dir string) (*dataSnapshotStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: snapshot data dir: %w", err)
	}
	s := &dataSnapshotStore{fs: fs, dir: dir}
	// Raft has not started: a snapshot still being written is one a crash
	// cut short, which raft never resumes. Remove it, then (in gc) the
	// segment links made for it.
	tmps, _ := filepath.Glob(filepath.Join(s.raftDir(), "*.tmp"))
	for _, t := range tmps {
		if err := os.RemoveAll(t); err != nil {
			return nil, fmt.Errorf("cluster: remove unfinished snapshot: %w", err)
		}
	}
	s.gc()
	return s, nil
}

// raftDir is the FileSnapshotStore's directory, beside snapdata.
func (s *dataSnapshotStore) raftDir() string { return filepath.Join(filepath.Dir(s.dir), "snapshots") }

// Create implements raft.SnapshotStore.
func (s *dataSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.fs.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &dataSink{store: s, sink: sink, dir: filepath.Join(s.dir, sink.ID())}, nil
}

// List implements raft.SnapshotStore.
func (s *dataSnapshotStore) List() ([]*raft.SnapshotMeta, error) { return s.fs.List() }

// Open implements raft.SnapshotStore: the manifest, then the files' bytes.
func (s *dataSnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.fs.Open(id)
	if err != nil {
		return nil, nil, err
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: read snapshot %s: %w", id, err)
	}
	m, err := decodeStoredManifest(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: snapshot %s: %w", id, err)
	}
	if m == nil { // first format: the manifest alone
		return meta, io.NopCloser(bytes.NewReader(raw)), nil
	}
	m.Dir = filepath.Join(s.dir, id)
	readers := []io.Reader{nil}
	var closers []io.Closer
	total := int64(0)
	for i := range m.Files {
		m.Files[i].Inline = true
		f, err := os.Open(filepath.Join(m.Dir, m.Files[i].Path))
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, nil, fmt.Errorf("cluster: snapshot %s: %w", id, err)
		}
		closers = append(closers, f)
		readers = append(readers, io.LimitReader(f, m.Files[i].Size))
		total += m.Files[i].Size
	}
	hdr, err := encodeManifest(m)
	if err != nil {
		for _, c := range closers {
			c.Close()
		}
		return nil, nil, err
	}
	readers[0] = bytes.NewReader(hdr)
	out := *meta
	out.Size = int64(len(hdr)) + total
	return &out, &multiReadCloser{Reader: io.MultiReader(readers...), closers: closers}, nil
}

// gc removes the snapdata of snapshots the FileSnapshotStore no longer has.
// A reader that opened the files keeps them readable.
func (s *dataSnapshotStore) gc() {
	metas, err := s.fs.List()
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, m := range metas {
		keep[m.ID] = true
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".tmp")
		if !keep[name] && !s.inProgress(e.Name()) {
			_ = os.RemoveAll(filepath.Join(s.dir, e.Name()))
		}
	}
}

// inProgress reports whether raft is still writing the snapshot named
// (its FileSnapshotStore directory is still <id>.tmp).
func (s *dataSnapshotStore) inProgress(name string) bool {
	_, err := os.Stat(filepath.Join(s.raftDir(), strings.TrimSuffix(name, ".tmp")+".tmp"))
	return err == nil
}

type multiReadCloser struct {
	io.Reader
	closers []io.Closer
}

func (m *multiReadCloser) Close() error {
	var errs []error
	for _, c := range m.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// encodeManifest returns magic, length and manifest.
func encodeManifest(m *manifest) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode manifest: %w", err)
	}
	out := make([]byte, 0, len(snapMagic)+4+len(b))
	out = append(out, snapMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
	return append(out, b...), nil
}

// decodeStoredManifest decodes a stored manifest; it returns a nil manifest
// for the first format.
func decodeStoredManifest(raw []byte) (*manifest, error) {
	if !bytes.HasPrefix(raw, []byte(snapMagic)) {
		return nil, nil
	}
	return readManifest(bufio.NewReader(bytes.NewReader(raw)))
}

// readManifest reads magic, length and manifest from r. It returns
// errNoMagic, with nothing consumed, for a stream of the first format.
func readManifest(r *bufio.Reader) (*manifest, error) {
	head, err := r.Peek(len(snapMagic))
	if err != nil || string(head) != snapMagic {
		return nil, errNoMagic
	}
	if _, err := r.Discard(len(snapMagic)); err != nil {
		return nil, err
	}
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, fmt.Errorf("cluster: snapshot stream: %w", err)
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n > maxManifestBytes {
		return nil, fmt.Errorf("cluster: snapshot manifest of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("cluster: snapshot stream: %w", err)
	}
	m := &manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("cluster: decode manifest: %w", err)
	}
	for _, f := range m.Files {
		if !validSnapPath(f.Path) || f.Size < 0 {
			return nil, fmt.Errorf("cluster: snapshot file %q of %d bytes is not valid", f.Path, f.Size)
		}
	}
	return m, nil
}

var errNoMagic = errors.New("cluster: snapshot stream has no magic")

// validSnapPath accepts only <dir>/<file> without traversal.
func validSnapPath(p string) bool {
	parts := strings.Split(p, "/")
	return len(parts) == 2 && !slices.ContainsFunc(parts, func(s string) bool {
		return s == "" || s == "." || s == ".." || strings.ContainsAny(s, `\`)
	})
}

// dataSink receives a snapshot: from the local FSM (the manifest alone, the
// files already linked into dir) or from a leader (the stream, whose files
// it writes into dir).
type dataSink struct {
	store *dataSnapshotStore
	sink  raft.SnapshotSink
	dir   string

	buf    []byte    // stream bytes not yet parsed (header, manifest)
	m      *manifest // once parsed
	file   int       // index of the file being received
	out    *os.File
	left   int64 // bytes of the current file still to come
	err    error
	closed bool
}

// ID implements raft.SnapshotSink.
func (d *dataSink) ID() string { return d.sink.ID() }

// Write implements io.Writer: it parses the stream as it comes.
func (d *dataSink) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	for len(p) > 0 {
		if d.m == nil {
			d.buf = append(d.buf, p...)
			p = nil
			m, rest, ok, err := parseHeader(d.buf)
			if err != nil {
				d.err = err
				return 0, err
			}
			if !ok {
				break
			}
			d.m, d.buf, p = m, nil, rest
			if err := d.nextFile(); err != nil {
				d.err = err
				return 0, err
			}
			continue
		}
		if d.out == nil {
			d.err = fmt.Errorf("cluster: snapshot stream has %d bytes past its files", len(p))
			return 0, d.err
		}
		k := int(min(int64(len(p)), d.left))
		if _, err := d.out.Write(p[:k]); err != nil {
			d.err = err
			return 0, err
		}
		p, d.left = p[k:], d.left-int64(k)
		if d.left == 0 {
			if err := d.nextFile(); err != nil {
				d.err = err
				return 0, err
			}
		}
	}
	return n, nil
}

// parseHeader parses magic, length and manifest once buf holds them all.
func parseHeader(buf []byte) (*manifest, []byte, bool, error) {
	if len(buf) < len(snapMagic)+4 {
		return nil, nil, false, nil
	}
	if string(buf[:len(snapMagic)]) != snapMagic {
		return nil, nil, false, errors.New("cluster: snapshot stream has no magic")
	}
	n := int(binary.BigEndian.Uint32(buf[len(snapMagic):]))
	end := len(snapMagic) + 4 + n
	if n > maxManifestBytes {
		return nil, nil, false, fmt.Errorf("cluster: snapshot manifest of %d bytes", n)
	}
	if len(buf) < end {
		return nil, nil, false, nil
	}
	m, err := readManifest(bufio.NewReader(bytes.NewReader(buf[:end])))
	if err != nil {
		return nil, nil, false, err
	}
	return m, buf[end:], true, nil
}

// nextFile closes the file received and opens the next inline one.
func (d *dataSink) nextFile() error {
	if d.out != nil {
		if err := d.out.Sync(); err != nil {
			return err
		}
		if err := d.out.Close(); err != nil {
			return err
		}
		d.out = nil
		d.file++
	}
	for d.file < len(d.m.Files) {
		f := d.m.Files[d.file]
		if !f.Inline {
			d.file++
			continue
		}
		path := filepath.Join(d.dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if f.Size == 0 {
			if err := errors.Join(out.Sync(), out.Close()); err != nil {
				return err
			}
			d.file++
			continue
		}
		d.out, d.left = out, f.Size
		return nil
	}
	return nil
}

// Close implements raft.SnapshotSink: once every file is in place, the
// manifest goes into the FileSnapshotStore.
func (d *dataSink) Close() error {
	if d.closed {
		return nil // raft closes after Persist has
	}
	d.closed = true
	for d.err == nil && d.out != nil && d.left == 0 {
		d.err = d.nextFile()
	}
	if d.err == nil && (d.m == nil || d.out != nil || d.file < len(d.m.Files)) {
		d.err = errors.New("cluster: snapshot stream ended early")
	}
	if d.err != nil {
		return errors.Join(d.err, d.Cancel())
	}
	for i := range d.m.Files {
		d.m.Files[i].Inline = false
	}
	d.m.Dir = ""
	if err := syncTree(d.dir); err != nil {
		return errors.Join(err, d.Cancel())
	}
	hdr, err := encodeManifest(d.m)
	if err != nil {
		return errors.Join(err, d.Cancel())
	}
	if _, err := d.sink.Write(hdr); err != nil {
		return errors.Join(err, d.Cancel())
	}
	if err := d.sink.Close(); err != nil {
		return err
	}
	d.store.gc()
	return nil
}

// Cancel implements raft.SnapshotSink.
func (d *dataSink) Cancel() error {
	if d.closed && d.err == nil {
		return nil
	}
	d.closed = true
	if d.out != nil {
		d.out.Close()
		d.out = nil
	}
	err := d.sink.Cancel()
	_ = os.RemoveAll(d.dir)
	return err
}

// syncTree fsyncs dir and the directories in it (the files were fsynced
// when written or linked).
func syncTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := fileutil.SyncDir(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return fileutil.SyncDir(dir)
}
