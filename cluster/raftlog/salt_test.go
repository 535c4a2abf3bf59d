package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// forgedFrame is what a client who knows the frame format, but not the
// segment's salt, can put in a record to pass for a sync point: a whole
// frame with the sync bit and a plain CRC32C.
func forgedFrame(index uint64) []byte {
	p := binary.BigEndian.AppendUint64(nil, index)
	p = binary.BigEndian.AppendUint64(p, 1)   // term
	p = binary.BigEndian.AppendUint64(p, 0)   // appended_at
	p = append(p, byte(raft.LogCommand)|0x80) // type, sync point
	p = binary.BigEndian.AppendUint32(p, 0)   // data length
	p = binary.BigEndian.AppendUint32(p, 0)   // extensions length
	b := binary.BigEndian.AppendUint32(nil, uint32(len(p)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)))
	return append(b, p...)
}

// forgeFixture writes n entries one StoreLog at a time (each acknowledged;
// with roll, as many as fill the first segment), then one StoreLogs call of the four entries n+1..n+4, the last of which
// carries forged sync points for n+2..n+5 in its data. It returns the files
// as a crash would leave them, the last segment's name, the positions of
// the frames of the last call and the end of the data, where the forged
// frames start, and the entries written.
func forgeFixture(t *testing.T, n uint64, roll bool) (files map[string][]byte, last string, pos []int64, forged int64, want []*raft.Log) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(t, true)
	s := openTest(t, dir, cfg)
	if roll {
		n = 0
		for end := int64(segHeaderSize); end+int64(entrySize(entry(n+1, 1, 300))) <= cfg.SegmentBytes; n++ {
			end += int64(entrySize(entry(n+1, 1, 300)))
		}
	}
	want = entries(1, n+3, 1, 300)
	var data []byte
	for i := n + 2; i <= n+5; i++ {
		data = append(data, forgedFrame(i)...)
	}
	want = append(want, &raft.Log{Index: n + 4, Term: 1, Type: raft.LogCommand, Data: append(data, "tail"...)})
	for _, l := range want[:n] {
		if err := s.StoreLog(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.StoreLogs(want[n:]); err != nil {
		t.Fatal(err)
	}
	seg := s.segs[len(s.segs)-1]
	k := len(seg.offsets)
	for _, o := range seg.offsets[k-4:] {
		pos = append(pos, int64(o))
	}
	pos = append(pos, seg.end)
	files = map[string][]byte{}
	for _, p := range segFiles(t, dir) {
		files[filepath.Base(p)] = mustRead(t, p)
	}
	last = filepath.Base(seg.path)
	forged = int64(bytes.Index(files[last][pos[3]:], data)) + pos[3]
	if forged < pos[3] {
		t.Fatal("fixture: forged frames not found in the last segment")
	}
	return files, last, pos, forged, want
}

// TestCrashForgedSyncPoint: the last StoreLogs call is torn (bytes lost,
// or a bit flipped, anywhere before the forged frames a record of that
// call carries). Nothing was acknowledged after the torn entry, so Open
// must cut the tail; a forged sync point must not make it a CorruptError.
// In "new segment" the last call starts a new segment, whose first sector
// (header and first frame) is lost as well in "torn roll".
func TestCrashForgedSyncPoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		roll bool
	}{{"same segment", false}, {"new segment", true}} {
		t.Run(tc.name, func(t *testing.T) {
			files, last, pos, forged, want := forgeFixture(t, 10, tc.roll)
			n := uint64(len(want) - 4)
			if tc.roll && (last != segName(n+1) || pos[0] != segHeaderSize) {
				t.Fatalf("fixture: last call in %s at %d, want a new segment %s", last, pos[0], segName(n+1))
			}
			dir := t.TempDir()
			check := func(t *testing.T, b []byte) {
				t.Helper()
				mod := map[string][]byte{}
				for k, v := range files {
					mod[k] = v
				}
				mod[last] = b
				writeFiles(t, dir, mod)
				keep := n
				for k := 0; k < 4 && string(b[pos[k]:pos[k+1]]) == string(files[last][pos[k]:pos[k+1]]); k++ {
					keep++
				}
				s, err := Open(dir, testConfig(t, false))
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				checkRange(t, s, 1, keep, func(i uint64) *raft.Log { return want[i-1] })
			}
			for _, mode := range []string{"zeros", "flip"} {
				t.Run(mode, func(t *testing.T) {
					for c := pos[0]; c < forged; c++ {
						b := append([]byte(nil), files[last]...)
						if mode == "zeros" {
							clear(b[c:forged])
						} else {
							b[c] ^= 1 << (c % 8)
						}
						t.Run(fmt.Sprint(c), func(t *testing.T) { check(t, b) })
						if t.Failed() {
							return
						}
					}
				})
			}
			if tc.roll {
				t.Run("torn roll", func(t *testing.T) {
					b := append([]byte(nil), files[last]...)
					clear(b[:512])
					check(t, b)
					if _, err := os.Stat(filepath.Join(dir, last)); !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("the torn segment is still there: %v", err)
					}
				})
			}
		})
	}
}

// v1Dir copies testdata/v1 into a new directory: segments 1..33 and
// 34..45 (entry(i, 1, 200)) written by the binary before salts, in the
// SRAFTLG1 format (34..45 one StoreLog each, so each is a sync point).
func v1Dir(t *testing.T) string {
	t.Helper()
	return copyDir(t, filepath.Join("testdata", "v1"))
}

func v1Entry(i uint64) *raft.Log { return entry(i, 1, 200) }

// TestOpenV1Segments: a store of SRAFTLG1 segments opens after the upgrade;
// new entries go to a new SRAFTLG2 segment, never into the old one.
func TestOpenV1Segments(t *testing.T) {
	dir := v1Dir(t)
	old := mustRead(t, filepath.Join(dir, segName(34)))
	cfg := testConfig(t, true)
	s := openTest(t, dir, cfg)
	checkRange(t, s, 1, 45, v1Entry)
	if err := s.StoreLogs(entries(46, 48, 1, 200)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(dir, segName(34))); !bytes.Equal(got, old) {
		t.Fatal("the SRAFTLG1 segment was written to")
	}
	b, err := os.ReadFile(filepath.Join(dir, segName(46)))
	if err != nil || string(b[:8]) != "SRAFTLG2" {
		t.Fatalf("new segment: %.8q, %v; want magic SRAFTLG2", b, err)
	}
	s = openTest(t, dir, cfg)
	checkRange(t, s, 1, 48, v1Entry)
}

// TestV1TailFaultIsTorn: an SRAFTLG1 segment's sync points carry no salt, so
// a record could forge them; they prove nothing, and a fault in an SRAFTLG1
// last segment is a torn tail, as before sync points existed.
func TestV1TailFaultIsTorn(t *testing.T) {
	dir := v1Dir(t)
	path := filepath.Join(dir, segName(34))
	b := mustRead(t, path)
	offs := frameOffsets(b)
	b[offs[40-34]+frameHeader+50] ^= 0x10 // entry 40's data; 41..45 follow
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir, testConfig(t, false))
	checkRange(t, s, 1, 39, v1Entry)
}

// TestOpenReadsTailOnce: on a clean start the data of the last segment ends
// at a zero length, and the preallocated zeros behind it are read once
// (looking for a sync point and for anything to cut), not twice.
func TestOpenReadsTailOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, true)
	cfg.SegmentBytes = 4 << 20
	s := openTest(t, dir, cfg)
	if err := s.StoreLogs(entries(1, 10, 1, 300)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, cfg)
	checkRange(t, s, 1, 10, func(i uint64) *raft.Log { return entry(i, 1, 300) })
	if max := cfg.SegmentBytes + windowBytes; s.recoverRead > max {
		t.Fatalf("Open read %d bytes of a %d-byte segment; want at most %d", s.recoverRead, cfg.SegmentBytes, max)
	}
}
