package queue

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestCmdRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []Cmd{
		{Op: OpInit, TopicID: 7, Partition: 3, Group: "g", Gen: 1, Arg: 42, Offsets: []int64{}},
		{Op: OpDeliver, TopicID: 1, Group: "workers", Gen: 9, Flags: FlagNoCount, Offsets: []int64{5, 3, 1000000, 6}},
		{Op: OpNack, Partition: -1, Group: "g", Gen: 2, Text: "boom", Offsets: []int64{1, 2}, Times: []int64{1700000000000, -1}},
		{Op: OpDeadMark, Group: "g", Reason: ReasonRejected, Offsets: []int64{9}},
		{Op: OpReset, Group: "g", Gen: 1 << 63, Arg: -5, Offsets: []int64{}},
	} {
		got, err := DecodeCmd(c.Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Times != nil {
			c.Flags |= FlagTimes
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
		}
	}
	b := (&Cmd{Op: OpAck, Group: "g", Offsets: []int64{1, 2, 3}}).Append(nil)
	for i := range len(b) {
		if _, err := DecodeCmd(b[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("a command cut at %d of %d bytes: %v, want ErrMalformed", i, len(b), err)
		}
	}
	if _, err := DecodeCmd(append(b, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a command with a byte after it: %v, want ErrMalformed", err)
	}
	for _, op := range []Op{0, OpReset + 1, 255} {
		b := (&Cmd{Op: op, Group: "g"}).Append(nil)
		if _, err := DecodeCmd(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("op %d: %v, want ErrMalformed", op, err)
		}
	}
	long := Cmd{Op: OpNack, Group: "g", Text: string(bytes.Repeat([]byte{'x'}, 2*maxText)), Offsets: []int64{1}, Times: []int64{2}}
	if got, err := DecodeCmd(long.Append(nil)); err != nil || len(got.Text) != maxText {
		t.Fatalf("a long text comes back as %d bytes (%v), want it cut to %d", len(got.Text), err, maxText)
	}
}

// goldenCmds are commands as the code before package queue encoded them
// (then in cluster, with the data FSM's type byte 4 in front, which cluster
// still writes): raft logs hold them, so they must decode the same, and
// encode to the same bytes.
var goldenCmds = []struct {
	cmd   Cmd
	entry []byte
}{
	{Cmd{Op: OpInit, TopicID: 7, Partition: 3, Group: "g", Gen: 1, Arg: 42, Offsets: []int64{}},
		[]byte{0x4, 0x1, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x7, 0x0, 0x0, 0x0, 0x3, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x1, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x2a, 0x0, 0x0, 0x1, 0x67, 0x0, 0x0}},
	{Cmd{Op: OpDeliver, TopicID: 1, Partition: 2, Group: "workers", Gen: 9, Flags: FlagNoCount, Offsets: []int64{5, 3, 1000000, 6}},
		[]byte{0x4, 0x2, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x1, 0x0, 0x0, 0x0, 0x2, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x9, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x2, 0x7, 0x77, 0x6f, 0x72, 0x6b, 0x65, 0x72, 0x73, 0x0, 0x4, 0xa, 0x3, 0xfa, 0x88, 0x7a, 0xf3, 0x88, 0x7a}},
	{Cmd{Op: OpNack, TopicID: 1<<40 + 5, Partition: 70000, Group: "g", Gen: 2, Flags: FlagTimes, Text: "boom", Offsets: []int64{1, 2}, Times: []int64{1700000000000, -1}},
		[]byte{0x4, 0x4, 0x0, 0x0, 0x1, 0x0, 0x0, 0x0, 0x0, 0x5, 0x0, 0x1, 0x11, 0x70, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x2, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x1, 0x1, 0x67, 0x4, 0x62, 0x6f, 0x6f, 0x6d, 0x2, 0x2, 0x2, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, 0x1}},
	{Cmd{Op: OpDeadMark, TopicID: 3, Group: "g", Gen: 4, Reason: ReasonRejected, Text: "bad", Offsets: []int64{9}},
		[]byte{0x4, 0x5, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x3, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x4, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x2, 0x0, 0x1, 0x67, 0x3, 0x62, 0x61, 0x64, 0x1, 0x12}},
	{Cmd{Op: OpReset, TopicID: 3, Group: "g", Gen: 5, Arg: -1 + 1<<33, Offsets: []int64{}},
		[]byte{0x4, 0x7, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x3, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x5, 0x0, 0x0, 0x0, 0x1, 0xff, 0xff, 0xff, 0xff, 0x0, 0x0, 0x1, 0x67, 0x0, 0x0}},
}

func TestCmdGolden(t *testing.T) {
	t.Parallel()
	for _, g := range goldenCmds {
		body := g.entry[1:]
		got, err := DecodeCmd(body)
		if err != nil {
			t.Fatalf("op %d: %v", g.cmd.Op, err)
		}
		if !reflect.DeepEqual(got, g.cmd) {
			t.Fatalf("op %d decodes as\n %+v\nwant %+v", g.cmd.Op, got, g.cmd)
		}
		if enc := g.cmd.Append(nil); !bytes.Equal(enc, body) {
			t.Fatalf("op %d encodes as\n %#v\nwant %#v", g.cmd.Op, enc, body)
		}
	}
}

// FuzzDecodeCmd: no input panics the decoder or makes it allocate beyond
// the input, and what decodes encodes to the same command again.
func FuzzDecodeCmd(f *testing.F) {
	for _, g := range goldenCmds {
		f.Add(g.entry[1:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCmd(b)
		if err != nil {
			return
		}
		if len(c.Offsets) > len(b) {
			t.Fatalf("%d offsets from %d bytes", len(c.Offsets), len(b))
		}
		again, err := DecodeCmd(c.Append(nil))
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		c.Text = c.Text[:min(len(c.Text), maxText)] // Append cuts it
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoded command decodes as %+v, want %+v", again, c)
		}
	})
}
