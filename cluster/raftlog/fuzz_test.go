package raftlog

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzDecodeEntry feeds arbitrary bytes to the frame decoder: it must never
// panic or allocate by a length field, and whatever it accepts must encode
// back to the same bytes. The corpus in testdata/fuzz runs as a test.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(appendEntry(nil, entry(1, 1, 0), false))
	f.Add(appendEntry(nil, entry(5, 3, 40), true)) // with extensions, a sync point
	f.Add(appendEntry(nil, &raft.Log{Index: 7}, false))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		n, err := decodeEntry(b, 1<<12, &l)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("decoded %d bytes of %d", n, len(b))
		}
		if got := appendEntry(nil, &l, frameSync(b)); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", got, b[:n])
		}
	})
}
