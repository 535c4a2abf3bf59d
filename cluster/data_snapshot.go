package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratalog/strata/internal/fileutil"
	"github.com/stratalog/strata/segment"
)

// linkFiles hard-links every partition's segment files, as of the
// snapshot, into dir and lists them in the manifest. A link costs the same
// whatever the file's size, so a snapshot costs O(segments). Retention may
// delete the oldest segments between the snapshot and the link: the
// partition's snapshot then starts at the oldest segment still there.
func (s *dataSnapshot) linkFiles(dir string) error {
	for i := range s.m.Partitions {
		lg := s.logs[i]
		pdir := filepath.Base(lg.Dir())
		if err := os.MkdirAll(filepath.Join(dir, pdir), 0o755); err != nil {
			return fmt.Errorf("cluster: snapshot dir: %w", err)
		}
		var files []snapFile
		segs := s.segs[i]
		for j, si := range segs {
			name := fmt.Sprintf("%020d.log", si.BaseOffset)
			dst := filepath.Join(dir, pdir, name)
			err := os.Link(filepath.Join(lg.Dir(), name), dst)
			if errors.Is(err, fs.ErrNotExist) && j < len(segs)-1 {
				// Deleted by retention: everything linked so far is older.
				for _, f := range files {
					_ = os.Remove(filepath.Join(dir, f.Path))
				}
				files = nil
				s.m.Partitions[i].StartOffset = max(s.m.Partitions[i].StartOffset, segs[j+1].BaseOffset)
				continue
			}
			if err != nil {
				return fmt.Errorf("cluster: snapshot link %s: %w", name, err)
			}
			files = append(files, snapFile{Path: pdir + "/" + name, Size: si.Size})
		}
		s.m.Files = append(s.m.Files, files...)
	}
	return syncTree(dir)
}

// snapSource gives Restore the segment files of a snapshot: from the local
// snapshot directory (m.Dir) when there is one, else from the stream, in
// manifest order.
type snapSource struct {
	m    *manifest
	r    *bufio.Reader
	next int // index in m.Files of the next file the stream holds
	by   map[string][]int
}

// openSnapshotStream reads the manifest at the head of a snapshot stream
// (either format).
func openSnapshotStream(rc io.Reader) (*manifest, *snapSource, error) {
	br := bufio.NewReaderSize(rc, 1<<20)
	m, err := readManifest(br)
	if errors.Is(err, errNoMagic) {
		m = &manifest{}
		if err := json.NewDecoder(br).Decode(m); err != nil {
			return nil, nil, fmt.Errorf("cluster: decode data manifest: %w", err)
		}
	} else if err != nil {
		return nil, nil, err
	}
	src := &snapSource{m: m, r: br, by: map[string][]int{}}
	for i, f := range m.Files {
		d, _, _ := strings.Cut(f.Path, "/")
		src.by[d] = append(src.by[d], i)
	}
	if m.Dir != "" {
		if _, err := os.Stat(m.Dir); err != nil {
			m.Dir = "" // not on this node: read the stream
		}
	}
	return m, src, nil
}

// has reports whether the snapshot holds files of partition directory d.
func (s *snapSource) has(d string) bool { return len(s.by[d]) > 0 }

// place puts file i at dst: a hard link of a sealed segment, a copy of the
// last one (which the partition appends to, while the snapshot must not
// change).
func (s *snapSource) place(i int, dst string, last bool) error {
	f := s.m.Files[i]
	if s.m.Dir != "" {
		src := filepath.Join(s.m.Dir, f.Path)
		if !last {
			if err := os.Link(src, dst); err == nil {
				return nil
			}
		}
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		return copyFile(dst, io.LimitReader(in, f.Size), f.Size)
	}
	if i < s.next {
		return fmt.Errorf("cluster: snapshot file %s already passed in the stream", f.Path)
	}
	for ; s.next < i; s.next++ {
		if _, err := io.CopyN(io.Discard, s.r, s.m.Files[s.next].Size); err != nil {
			return fmt.Errorf("cluster: snapshot stream: %w", err)
		}
	}
	s.next++
	return copyFile(dst, s.r, f.Size)
}

func copyFile(dst string, r io.Reader, n int64) error {
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(out, r, n); err != nil {
		return errors.Join(fmt.Errorf("cluster: copy snapshot file %s: %w", dst, err), out.Close())
	}
	return errors.Join(out.Sync(), out.Close())
}

// installPartition replaces a partition's directory with the snapshot's
// segment files and opens it; segment recovery rebuilds the indexes.
func (f *DataFSM) installPartition(dir string, e manifestEntry, src *snapSource, old *segment.Log) (*segment.Log, error) {
	if old != nil {
		if err := old.Close(); err != nil {
			f.log.Warn("close partition before install", "dir", dir, "err", err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	idx := src.by[filepath.Base(dir)]
	for k, i := range idx {
		name := filepath.Base(src.m.Files[i].Path)
		if err := src.place(i, filepath.Join(dir, name), k == len(idx)-1); err != nil {
			return nil, err
		}
	}
	if err := fileutil.SyncDir(dir); err != nil {
		return nil, err
	}
	lg, err := segment.Open(dir, f.restoreSegmentConfig(e))
	if err != nil {
		return nil, err
	}
	if lg.HighWatermark() != e.HighWatermark {
		return nil, errors.Join(fmt.Errorf("cluster: partition %s installed from the snapshot ends at %d, the snapshot says %d",
			dir, lg.HighWatermark(), e.HighWatermark), lg.Close())
	}
	return lg, nil
}
