package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var codecs = []Compression{NoCompression, Gzip, Snappy, LZ4, Zstd}

// testRecords returns n records with a mix of nil and empty keys and
// values, headers, and timestamps that go back and forth.
func testRecords(n int, valueLen int) []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.UnixMilli(1_700_000_000_000)
	recs := make([]Record, n)
	for i := range recs {
		r := &recs[i]
		switch i % 4 {
		case 0:
			r.Key = fmt.Appendf(nil, "key-%d", i)
		case 1:
			r.Key = []byte{}
		case 2: // nil key
		case 3:
			r.Key = bytes.Repeat([]byte{byte(i)}, 200) // a two-byte varint length
		}
		if i%7 != 3 {
			r.Value = make([]byte, valueLen)
			for j := range r.Value {
				r.Value[j] = "abcdefgh"[rng.IntN(8)]
			}
		}
		if i%3 == 0 {
			r.Headers = []Header{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}, {Key: "nil", Value: nil}, {Key: "", Value: []byte{}}}
		}
		r.Timestamp = base.Add(time.Duration(rng.IntN(2000)-1000) * time.Millisecond)
	}
	return recs
}

// decodeAll decodes b and fails the test on error.
func decodeAll(t testing.TB, b []byte) []Record {
	t.Helper()
	var out []Record
	if err := DecodeBatches(b, func(r Record) bool { out = append(out, r); return true }); err != nil {
		t.Fatalf("DecodeBatches: %v", err)
	}
	return out
}

// sameRecord reports how a decoded record differs from the one encoded.
func sameRecord(want, got Record, offset int64) error {
	switch {
	case got.Offset != offset:
		return fmt.Errorf("offset %d, want %d", got.Offset, offset)
	case (want.Key == nil) != (got.Key == nil) || !bytes.Equal(want.Key, got.Key):
		return fmt.Errorf("key %q, want %q", got.Key, want.Key)
	case (want.Value == nil) != (got.Value == nil) || !bytes.Equal(want.Value, got.Value):
		return fmt.Errorf("value %q, want %q", got.Value, want.Value)
	case !got.Timestamp.Equal(want.Timestamp.Truncate(time.Millisecond)):
		return fmt.Errorf("timestamp %v, want %v", got.Timestamp, want.Timestamp)
	case len(got.Headers) != len(want.Headers):
		return fmt.Errorf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for i := range want.Headers {
		w, g := want.Headers[i], got.Headers[i]
		if w.Key != g.Key || (w.Value == nil) != (g.Value == nil) || !bytes.Equal(w.Value, g.Value) {
			return fmt.Errorf("header %d = %q:%q, want %q:%q", i, g.Key, g.Value, w.Key, w.Value)
		}
	}
	return nil
}

// setBaseOffset rewrites a batch's base offset as the broker does.
func setBaseOffset(b []byte, off int64) { binary.BigEndian.PutUint64(b, uint64(off)) }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		for _, n := range []int{1, 2, 100, 3000} {
			t.Run(fmt.Sprintf("%s/%d", c, n), func(t *testing.T) {
				recs := testRecords(n, 100)
				b, err := AppendBatch([]byte("prefix"), recs, BatchOptions{Compression: c})
				if err != nil {
					t.Fatal(err)
				}
				if string(b[:6]) != "prefix" {
					t.Fatal("AppendBatch did not append")
				}
				b = b[6:]
				setBaseOffset(b, 1000)
				got := decodeAll(t, b)
				if len(got) != n {
					t.Fatalf("decoded %d records, want %d", len(got), n)
				}
				for i := range recs {
					if err := sameRecord(recs[i], got[i], 1000+int64(i)); err != nil {
						t.Fatalf("record %d: %v", i, err)
					}
				}
			})
		}
	}
}

func TestBatchHeader(t *testing.T) {
	t0 := time.UnixMilli(5000)
	recs := []Record{
		{Value: []byte("a"), Timestamp: t0},
		{Value: []byte("b"), Timestamp: t0.Add(3 * time.Second)},
		{Value: []byte("c"), Timestamp: t0.Add(-time.Second)},
	}
	tests := []struct {
		name              string
		opt               BatchOptions
		pid               int64
		epoch             int16
		seq               int32
		wantAttr          uint16
		compressedRecords bool
	}{
		{"plain", BatchOptions{}, -1, -1, -1, 0, false},
		{"idempotent", BatchOptions{ProducerID: 42, ProducerEpoch: 3, BaseSequence: 17}, 42, 3, 17, 0, false},
		{"zstd", BatchOptions{Compression: Zstd, ProducerID: 7, BaseSequence: 0}, 7, 0, 0, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendBatch(nil, recs, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			be := binary.BigEndian
			checks := []struct {
				name      string
				got, want int64
			}{
				{"base offset", int64(be.Uint64(b)), 0},
				{"length", int64(be.Uint32(b[8:])), int64(len(b) - 12)},
				{"leader epoch", int64(int32(be.Uint32(b[12:]))), -1},
				{"magic", int64(b[16]), 2},
				{"crc", int64(be.Uint32(b[17:])), int64(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))},
				{"attributes", int64(be.Uint16(b[21:])), int64(tt.wantAttr)},
				{"last offset delta", int64(be.Uint32(b[23:])), 2},
				{"first timestamp", int64(be.Uint64(b[27:])), 5000},
				{"max timestamp", int64(be.Uint64(b[35:])), 8000},
				{"producer id", int64(be.Uint64(b[43:])), tt.pid},
				{"producer epoch", int64(int16(be.Uint16(b[51:]))), int64(tt.epoch)},
				{"base sequence", int64(int32(be.Uint32(b[53:]))), int64(tt.seq)},
				{"record count", int64(be.Uint32(b[57:])), 3},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
				}
			}
		})
	}
}

func TestZeroTimestampIsNow(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	b, err := AppendBatch(nil, []Record{{Value: []byte("x")}, {Value: []byte("y")}}, BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	for _, r := range decodeAll(t, b) {
		if r.Timestamp.Before(before) || r.Timestamp.After(after) {
			t.Fatalf("timestamp %v not within [%v, %v]", r.Timestamp, before, after)
		}
	}
}

func TestAppendBatchErrors(t *testing.T) {
	if _, err := AppendBatch(nil, nil, BatchOptions{}); !errors.Is(err, ErrEmptyBatch) {
		t.Errorf("no records: %v, want ErrEmptyBatch", err)
	}
	dst := []byte("keep")
	out, err := AppendBatch(dst, []Record{{}}, BatchOptions{Compression: 9})
	if !errors.Is(err, ErrUnknownCompression) {
		t.Errorf("codec 9: %v, want ErrUnknownCompression", err)
	}
	if string(out) != "keep" {
		t.Errorf("dst changed to %q on error", out)
	}
}

func TestMaxEncodedLen(t *testing.T) {
	recs := testRecords(50, 300)
	for i := range recs {
		b, err := AppendBatch(nil, recs[i:i+1], BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, bound := len(b)-BatchHeaderLen, recs[i].MaxEncodedLen(); got > bound {
			t.Fatalf("record %d encodes to %d bytes, MaxEncodedLen says %d", i, got, bound)
		}
	}
}

func TestAppendBatchAllocs(t *testing.T) {
	recs := testRecords(100, 64)
	buf := make([]byte, 0, 1<<20)
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := AppendBatch(buf[:0], recs, BatchOptions{ProducerID: 1}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendBatch allocates %v times per uncompressed batch, want 0", allocs)
	}
}

func TestDecodeAllocs(t *testing.T) {
	recs := testRecords(100, 64)
	for i := range recs {
		recs[i].Headers = nil
	}
	b, _ := AppendBatch(nil, recs, BatchOptions{})
	n := 0
	allocs := testing.AllocsPerRun(20, func() {
		if err := DecodeBatches(b, func(Record) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("DecodeBatches allocates %v times per uncompressed batch, want 0", allocs)
	}
}

// concatBatches builds k batches of n records each, with base offsets
// assigned as the broker would.
func concatBatches(t testing.TB, k, n int, c Compression) ([]byte, []int) {
	t.Helper()
	var b []byte
	var ends []int
	off := int64(0)
	for i := 0; i < k; i++ {
		start := len(b)
		var err error
		b, err = AppendBatch(b, testRecords(n, 20), BatchOptions{Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		setBaseOffset(b[start:], off)
		off += int64(n)
		ends = append(ends, len(b))
	}
	return b, ends
}

func TestPartialTail(t *testing.T) {
	t.Parallel()
	for _, c := range []Compression{NoCompression, LZ4} {
		b, ends := concatBatches(t, 3, 5, c)
		for cut := ends[1]; cut <= ends[2]; cut++ {
			got := decodeAll(t, b[:cut])
			want := 10
			if cut == ends[2] {
				want = 15
			}
			if len(got) != want {
				t.Fatalf("%s cut at %d: %d records, want %d", c, cut, len(got), want)
			}
		}
	}
}

func TestDecodeBatchesFrom(t *testing.T) {
	t.Parallel()
	b, _ := concatBatches(t, 3, 10, Snappy) // offsets 0..29
	tests := []struct {
		from     int64
		stopAt   int64 // -1: never stop
		first    int64
		n        int
		wantNext int64
	}{
		{0, -1, 0, 30, 30},
		{13, -1, 13, 17, 30},
		{20, -1, 20, 10, 30},
		{29, -1, 29, 1, 30},
		{30, -1, 0, 0, 30},
		{45, -1, 0, 0, 45},
		{5, 12, 5, 8, 13},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("from%d_stop%d", tt.from, tt.stopAt), func(t *testing.T) {
			var got []int64
			next, err := DecodeBatchesFrom(b, tt.from, func(r Record) bool {
				got = append(got, r.Offset)
				return r.Offset != tt.stopAt
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.n || (tt.n > 0 && got[0] != tt.first) {
				t.Fatalf("offsets %v, want %d from %d", got, tt.n, tt.first)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("offsets not consecutive: %v", got)
				}
			}
			if next != tt.wantNext {
				t.Fatalf("next = %d, want %d", next, tt.wantNext)
			}
		})
	}
	if next, err := DecodeBatchesFrom(b[:40], 7, func(Record) bool { return true }); err != nil || next != 7 {
		t.Fatalf("no complete batch: next %d, err %v; want 7, nil", next, err)
	}
}

func TestControlBatchSkipped(t *testing.T) {
	t.Parallel()
	b, _ := AppendBatch(nil, testRecords(3, 5), BatchOptions{})
	binary.BigEndian.PutUint16(b[21:], attrControl)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	setBaseOffset(b, 10)
	n := 0
	next, err := DecodeBatchesFrom(b, 10, func(Record) bool { n++; return true })
	if err != nil || n != 0 || next != 13 {
		t.Fatalf("control batch: %d records, next %d, err %v; want 0, 13, nil", n, next, err)
	}
}

func TestLogAppendTime(t *testing.T) {
	t.Parallel()
	b, _ := AppendBatch(nil, testRecords(3, 5), BatchOptions{})
	binary.BigEndian.PutUint16(b[21:], attrLogAppendTime)
	binary.BigEndian.PutUint64(b[35:], 123456)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	for _, r := range decodeAll(t, b) {
		if r.Timestamp.UnixMilli() != 123456 {
			t.Fatalf("log-append-time record has timestamp %d, want the batch's max 123456", r.Timestamp.UnixMilli())
		}
	}
}

func TestAliasingAndCapacity(t *testing.T) {
	t.Parallel()
	recs := []Record{{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte("k2"), Value: []byte("v2")}}
	b, _ := AppendBatch(nil, recs, BatchOptions{})
	got := decodeAll(t, b)
	if cap(got[0].Key) != len(got[0].Key) || cap(got[0].Value) != len(got[0].Value) {
		t.Fatal("decoded slices are not clipped")
	}
	_ = append(got[0].Value, 'X')
	if got := decodeAll(t, b); string(got[1].Key) != "k2" {
		t.Fatal("appending to a decoded value overwrote the next record")
	}
}

// TestCorruptBytes flips every byte of a batch. Bytes covered by the CRC
// must give ErrChecksum; the base offset and leader epoch are outside it
// (the broker rewrites them); a flipped length makes a partial batch, a
// corrupt one or one whose CRC fails. Never a panic.
func TestCorruptBytes(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		orig, err := AppendBatch(nil, testRecords(4, 10), BatchOptions{Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		for i := range orig {
			b := bytes.Clone(orig)
			b[i] ^= 0x41
			err := DecodeBatches(b, func(Record) bool { return true })
			switch {
			case i < 8 || (i >= 12 && i < 16):
				if err != nil {
					t.Fatalf("%s: byte %d outside the CRC: %v", c, i, err)
				}
			case i < 12:
				if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrChecksum) {
					t.Fatalf("%s: length byte %d: %v", c, i, err)
				}
			case i == 16:
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: magic byte: %v, want ErrCorrupt", c, err)
				}
			default:
				if !errors.Is(err, ErrChecksum) {
					t.Fatalf("%s: byte %d: %v, want ErrChecksum", c, i, err)
				}
			}
		}
	}
}

// refreshCRC recomputes the CRC of every complete batch in b, so that a
// mutation reaches the record parser.
func refreshCRC(b []byte) {
	for p := 0; len(b)-p >= BatchHeaderLen; {
		l := int(int32(binary.BigEndian.Uint32(b[p+8:])))
		if l < BatchHeaderLen-12 || l > len(b)-p-12 {
			return
		}
		batch := b[p : p+12+l]
		binary.BigEndian.PutUint32(batch[17:], crc32.Checksum(batch[21:], castagnoli))
		p += 12 + l
	}
}

// TestCorruptWithValidCRC damages the records behind a valid CRC: the
// decoder must report it, or decode something consistent, never panic.
func TestCorruptWithValidCRC(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range codecs {
		orig, _ := AppendBatch(nil, testRecords(20, 30), BatchOptions{Compression: c})
		for i := 0; i < 2000; i++ {
			b := bytes.Clone(orig)
			for k := rng.IntN(3) + 1; k > 0; k-- {
				b[BatchHeaderLen-4+rng.IntN(len(b)-BatchHeaderLen+4)] = byte(rng.Uint32())
			}
			refreshCRC(b)
			err := DecodeBatches(b, func(r Record) bool { return true })
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: %v does not wrap ErrCorrupt", c, err)
			}
		}
	}
}

func TestCorruptHeaders(t *testing.T) {
	t.Parallel()
	good, _ := AppendBatch(nil, testRecords(2, 10), BatchOptions{})
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		refreshCRC(b)
		return b
	}
	be := binary.BigEndian
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"negative length", mod(func(b []byte) { be.PutUint32(b[8:], 0xffffff00) }), ErrCorrupt},
		{"length below header", mod(func(b []byte) { be.PutUint32(b[8:], 20) }), ErrCorrupt},
		{"huge count", mod(func(b []byte) { be.PutUint32(b[57:], math.MaxInt32) }), ErrCorrupt},
		{"negative count", mod(func(b []byte) { be.PutUint32(b[57:], 0xffffffff) }), ErrCorrupt},
		{"fewer records than bytes", mod(func(b []byte) { be.PutUint32(b[57:], 1) }), ErrCorrupt},
		{"negative last delta", mod(func(b []byte) { be.PutUint32(b[23:], 0xffffffff) }), ErrCorrupt},
		{"offset delta past last", mod(func(b []byte) { be.PutUint32(b[23:], 0) }), ErrCorrupt},
		{"codec 7", mod(func(b []byte) { be.PutUint16(b[21:], 7) }), ErrUnknownCompression},
		{"codec says gzip", mod(func(b []byte) { be.PutUint16(b[21:], 1) }), ErrCorrupt},
		{"base offset overflow", mod(func(b []byte) { be.PutUint64(b, math.MaxInt64) }), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeBatches(tt.b, func(Record) bool { return true })
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestDecompressionBomb checks that a batch expanding past
// MaxDecompressedBytes is refused, for every codec.
func TestDecompressionBomb(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("compresses 33 MiB per codec")
	}
	big := []Record{{Value: make([]byte, MaxDecompressedBytes/2)}, {Value: make([]byte, MaxDecompressedBytes/2)}}
	for _, c := range codecs[1:] {
		t.Run(c.String(), func(t *testing.T) {
			b, err := AppendBatch(nil, big, BatchOptions{Compression: c})
			if err != nil {
				t.Fatal(err)
			}
			err = DecodeBatches(b, func(Record) bool { return true })
			if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt and ErrTooLarge", err)
			}
		})
	}
}

// TestSnappyAnnouncedSize checks that a snappy block announcing far more
// output than its size allows is refused before allocation.
func TestSnappyAnnouncedSize(t *testing.T) {
	t.Parallel()
	src := binary.AppendUvarint(nil, 30<<20) // announces 30 MiB
	src = append(src, 0, 'x')
	if _, err := decompress(src, Snappy); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestParseCompression(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		got, err := ParseCompression(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCompression(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := ParseCompression("brotli"); !errors.Is(err, ErrUnknownCompression) {
		t.Errorf("brotli: %v", err)
	}
}

func TestVarint(t *testing.T) {
	t.Parallel()
	vals := []int64{0, 1, -1, 63, -64, 64, -65, 1 << 20, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64}
	for _, v := range vals {
		b := appendVarint(nil, v)
		if len(b) != varintLen(v) {
			t.Errorf("varintLen(%d) = %d, encoded %d bytes", v, varintLen(v), len(b))
		}
		if want := binary.AppendVarint(nil, v); !bytes.Equal(b, want) {
			t.Errorf("appendVarint(%d) = %x, encoding/binary says %x", v, b, want)
		}
		got, n, ok := readVarint(b, 0)
		if !ok || got != v || n != len(b) {
			t.Errorf("readVarint(%x) = %d, %d, %v", b, got, n, ok)
		}
	}
	if _, _, ok := readVarint(bytes.Repeat([]byte{0xff}, 11), 0); ok {
		t.Error("an 11-byte varint was accepted")
	}
	if _, _, ok := readVarint([]byte{0x80, 0x80}, 0); ok {
		t.Error("a truncated varint was accepted")
	}
}

func TestCountRecords(t *testing.T) {
	t.Parallel()
	b, ends := concatBatches(t, 3, 10, Gzip)
	if got := CountRecords(b); got != 30 {
		t.Fatalf("CountRecords = %d, want 30", got)
	}
	if got := CountRecords(b[:ends[1]+20]); got != 20 {
		t.Fatalf("CountRecords with a partial tail = %d, want 20", got)
	}
	bad := bytes.Clone(b[:ends[0]])
	binary.BigEndian.PutUint32(bad[23:], math.MaxInt32)
	if got := CountRecords(bad); got > MaxDecompressedBytes/7 {
		t.Fatalf("CountRecords trusts a huge delta: %d", got)
	}
}
