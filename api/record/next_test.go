package record

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestNextOffset(t *testing.T) {
	t.Parallel()
	two, ends := concatBatches(t, 2, 3, NoCompression) // offsets 0..2, 3..5
	lz4, _ := concatBatches(t, 3, 4, LZ4)              // offsets 0..11
	control := append([]byte(nil), two...)
	binary.BigEndian.PutUint16(control[ends[0]+21:], attrControl)
	refreshCRC(control)
	backwards := append([]byte(nil), two...)
	setBaseOffset(backwards[ends[0]:], 1) // within the first batch
	badLength := append([]byte(nil), two...)
	binary.BigEndian.PutUint32(badLength[ends[0]+8:], BatchHeaderLen-13)
	tests := []struct {
		name string
		b    []byte
		from int64
		want int64
	}{
		{"empty", nil, 7, 7},
		{"two batches", two, 0, 6},
		{"from inside the second", two, 4, 6},
		{"from past the end", two, 9, 9},
		{"compressed", lz4, 5, 12},
		{"partial tail", two[:len(two)-1], 0, 3},
		{"header only", two[:BatchHeaderLen], 0, 0},
		{"control batch at the end", control, 0, 6},
		{"base offset going back", backwards, 0, 3},
		{"length below the header", badLength, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextOffset(tt.b, tt.from); got != tt.want {
				t.Errorf("NextOffset = %d, want %d", got, tt.want)
			}
			// The header walk agrees with the decoder wherever the
			// decoder has no complaint.
			if next, err := DecodeBatchesFrom(tt.b, tt.from, func(Record) bool { return true }); err == nil && next != tt.want {
				t.Errorf("DecodeBatchesFrom says next %d, the test wants %d", next, tt.want)
			}
		})
	}
}

// FuzzNextOffset checks the header walk against the decoder: the same
// next offset for every input the decoder accepts, and never less than
// the decoder's for input it rejects (the walk must not make a reader
// read a decoded record twice).
func FuzzNextOffset(f *testing.F) {
	for _, c := range []Compression{NoCompression, LZ4, Zstd} {
		b, _ := concatBatches(f, 3, 5, c)
		f.Add(b, int64(0), false)
		f.Add(b, int64(7), true)
		f.Add(b[:len(b)-9], int64(2), false)
	}
	big, _ := concatBatches(f, 1, 2, NoCompression)
	setBaseOffset(big, math.MaxInt64-1)
	f.Add(big, int64(math.MaxInt64-1), true)
	f.Add([]byte{}, int64(-1), false)
	f.Fuzz(func(t *testing.T, data []byte, from int64, fixCRC bool) {
		if fixCRC {
			refreshCRC(data)
		}
		got := NextOffset(data, from)
		want, err := DecodeBatchesFrom(data, from, func(Record) bool { return true })
		if err == nil && got != want {
			t.Fatalf("NextOffset(from %d) = %d, DecodeBatchesFrom's next is %d", from, got, want)
		}
		if err != nil && got < want && got != math.MinInt64 { // MinInt64: past the very last offset
			t.Fatalf("NextOffset(from %d) = %d, below the decoder's next %d (error %v)", from, got, want, err)
		}
		_, appendNext, appendErr := AppendRecordsFrom(nil, data, from)
		if appendErr == nil && got != appendNext {
			t.Fatalf("NextOffset(from %d) = %d, AppendRecordsFrom's next is %d", from, got, appendNext)
		}
	})
}
