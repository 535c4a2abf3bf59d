package raftlog

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzDecodeEntry feeds arbitrary bytes to the frame decoder: it must never
// panic or allocate by a length field, whatever it accepts must encode back
// to the same bytes, and a frame with a plain CRC32C (what a record could
// hold) must never decode in a salted segment. The corpus in testdata/fuzz
// runs as a test.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(appendEntry(nil, entry(1, 1, 0), false, 0))
	f.Add(appendEntry(nil, entry(5, 3, 40), true, 0)) // with extensions, a sync point
	f.Add(appendEntry(nil, &raft.Log{Index: 7}, false, 0))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		n, err := decodeEntry(b, 1<<12, 0, &l)
		if err != nil {
			return
		}
		var salted raft.Log
		if _, err := decodeEntry(b, 1<<12, 0x9e3779b9, &salted); err == nil {
			t.Fatalf("a frame with a plain CRC32C decodes under a salt: %x", b[:n])
		}
		if n > len(b) {
			t.Fatalf("decoded %d bytes of %d", n, len(b))
		}
		if got := appendEntry(nil, &l, frameSync(b), 0); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", got, b[:n])
		}
	})
}
