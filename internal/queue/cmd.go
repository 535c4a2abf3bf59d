package queue

import (
	"encoding/binary"
	"fmt"
)

// Commands. One command carries a whole receive or a whole ack batch, so
// they are binary and compact. The data group's raft entry is one type
// byte of cluster's data FSM (its queue command) followed by:
//
//	byte 0        op (Op)
//	bytes 1..8    topic id (big endian)
//	bytes 9..12   partition
//	bytes 13..20  generation the leader saw (a reset fences older commands)
//	bytes 21..28  arg: the floor of init and reset
//	byte 29       reason (dead mark)
//	byte 30       flags
//	uvarint n, group name; uvarint n, text
//	uvarint count, then count offsets as varint deltas from the previous one
//	with FlagTimes, count times (varint, unix ms) follow
//
// The layout is part of the raft log: it only ever gains ops and flags.

// Op is the operation of a command.
type Op byte

// Operations.
const (
	// OpInit creates a group's state on a partition at Arg (no-op when it
	// exists).
	OpInit Op = 1
	// OpDeliver counts one delivery of each offset.
	OpDeliver Op = 2
	// OpAck marks the offsets done.
	OpAck Op = 3
	// OpNack releases the offsets until Times[i] (unix ms), with Text as
	// the last error.
	OpNack Op = 4
	// OpDeadMark marks the offsets as on their way to the dead-letter
	// topic and gives each a dead-letter sequence number.
	OpDeadMark Op = 5
	// OpDead marks dead-marked offsets done: their dead letters are
	// written.
	OpDead Op = 6
	// OpReset moves the group to Arg with a fresh generation.
	OpReset Op = 7
)

// Command flags.
const (
	// FlagTimes says Times follow the offsets. Append sets it from Times.
	FlagTimes byte = 1
	// FlagNoCount makes a deliver command move the cursor without counting
	// the deliveries. It is a failpoint: it models delivery counts kept in
	// the leader's memory, and only a test of the broker sets it, to show
	// that its delivery-count test fails without the protection. Apply
	// keeps honouring it so that a log that holds it replays the same.
	FlagNoCount byte = 2
)

// Cmd is one command.
type Cmd struct {
	Op        Op
	TopicID   uint64
	Partition int32
	Group     string
	Gen       uint64
	Arg       int64
	Reason    byte
	Flags     byte
	Text      string
	Offsets   []int64
	Times     []int64
}

// cmdHeaderLen is the fixed part of a command.
const cmdHeaderLen = 31

// maxText bounds the error text a command carries; Append cuts longer
// text.
const maxText = 1024

// SizeHint is about the length of the command's encoding, for a buffer's
// capacity.
func (c *Cmd) SizeHint() int {
	return cmdHeaderLen + len(c.Group) + min(len(c.Text), maxText) + 12 + len(c.Offsets)*3 + len(c.Times)*7
}

// Append appends the command's encoding to b.
func (c *Cmd) Append(b []byte) []byte {
	text := c.Text
	if len(text) > maxText {
		text = text[:maxText]
	}
	flags := c.Flags &^ FlagTimes
	if c.Times != nil {
		flags |= FlagTimes
	}
	b = append(b, byte(c.Op))
	b = binary.BigEndian.AppendUint64(b, c.TopicID)
	b = binary.BigEndian.AppendUint32(b, uint32(c.Partition))
	b = binary.BigEndian.AppendUint64(b, c.Gen)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Arg))
	b = append(b, c.Reason, flags)
	b = binary.AppendUvarint(b, uint64(len(c.Group)))
	b = append(b, c.Group...)
	b = binary.AppendUvarint(b, uint64(len(text)))
	b = append(b, text...)
	b = binary.AppendUvarint(b, uint64(len(c.Offsets)))
	prev := int64(0)
	for _, o := range c.Offsets {
		b = binary.AppendVarint(b, o-prev)
		prev = o
	}
	for _, t := range c.Times {
		b = binary.AppendVarint(b, t)
	}
	return b
}

// DecodeCmd decodes a command Append encoded. Bytes that are not one
// (short, cut, trailing bytes, an unknown op) give ErrMalformed.
func DecodeCmd(b []byte) (Cmd, error) {
	var c Cmd
	if len(b) < cmdHeaderLen {
		return c, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrMalformed, len(b), cmdHeaderLen)
	}
	c.Op = Op(b[0])
	if c.Op < OpInit || c.Op > OpReset {
		return c, fmt.Errorf("%w: unknown op %d", ErrMalformed, c.Op)
	}
	c.TopicID = binary.BigEndian.Uint64(b[1:])
	c.Partition = int32(binary.BigEndian.Uint32(b[9:]))
	c.Gen = binary.BigEndian.Uint64(b[13:])
	c.Arg = int64(binary.BigEndian.Uint64(b[21:]))
	c.Reason, c.Flags = b[29], b[30]
	if c.Op == OpNack && c.Flags&FlagTimes == 0 {
		return c, fmt.Errorf("%w: a nack without times", ErrMalformed)
	}
	r := b[cmdHeaderLen:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(r)
		if k <= 0 || n > uint64(len(r)-k) {
			return "", false
		}
		s := string(r[k : k+int(n)])
		r = r[k+int(n):]
		return s, true
	}
	var ok1, ok2 bool
	c.Group, ok1 = str()
	c.Text, ok2 = str()
	n, k := binary.Uvarint(r)
	// Each offset takes at least a byte: a count above what is left is
	// corruption, never an allocation.
	if !ok1 || !ok2 || k <= 0 || n > uint64(len(r)-k) {
		return c, fmt.Errorf("%w: group, text or offset count", ErrMalformed)
	}
	r = r[k:]
	c.Offsets = make([]int64, n)
	prev := int64(0)
	for i := range c.Offsets {
		d, k := binary.Varint(r)
		if k <= 0 {
			return c, fmt.Errorf("%w: offset %d of %d", ErrMalformed, i, n)
		}
		prev += d
		c.Offsets[i] = prev
		r = r[k:]
	}
	if c.Flags&FlagTimes != 0 {
		if n > uint64(len(r)) {
			return c, fmt.Errorf("%w: %d times in %d bytes", ErrMalformed, n, len(r))
		}
		c.Times = make([]int64, n)
		for i := range c.Times {
			t, k := binary.Varint(r)
			if k <= 0 {
				return c, fmt.Errorf("%w: time %d of %d", ErrMalformed, i, n)
			}
			c.Times[i] = t
			r = r[k:]
		}
	}
	if len(r) != 0 {
		return c, fmt.Errorf("%w: %d bytes after the command", ErrMalformed, len(r))
	}
	return c, nil
}
