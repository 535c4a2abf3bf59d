package cluster

import (
	"encoding/binary"
	"fmt"
)

// Queue commands of the data FSM. One command carries a whole receive or a
// whole ack batch, so they are binary and compact:
//
//	byte 0        dataCmdQueue
//	byte 1        op (QueueOp)
//	bytes 2..9    topic id
//	bytes 10..13  partition
//	bytes 14..21  generation the leader saw (reset fences older commands)
//	bytes 22..29  arg: the floor of init and reset
//	byte 30       reason (dead mark)
//	byte 31       flags
//	uvarint n, group name; uvarint n, text
//	uvarint count, then count offsets as varint deltas from the previous one
//	with QueueFlagTimes, count times (varint, unix ms) follow

// QueueOp is the operation of a queue command.
type QueueOp byte

// Queue operations.
const (
	// QueueInit creates a group's state on a partition at Arg (no-op when
	// it exists).
	QueueInit QueueOp = 1
	// QueueDeliver counts one delivery of each offset.
	QueueDeliver QueueOp = 2
	// QueueAck marks the offsets done.
	QueueAck QueueOp = 3
	// QueueNack releases the offsets until Times[i] (unix ms), with Text as
	// the last error.
	QueueNack QueueOp = 4
	// QueueDeadMark marks the offsets as on their way to the dead-letter
	// topic and gives each a dead-letter sequence number.
	QueueDeadMark QueueOp = 5
	// QueueDead marks dead-marked offsets done: their dead letters are
	// written.
	QueueDead QueueOp = 6
	// QueueReset moves the group to Arg with a fresh generation.
	QueueReset QueueOp = 7
)

// Command flags.
const (
	// QueueFlagTimes says Times follow the offsets.
	QueueFlagTimes byte = 1
	// QueueFlagNoCount makes a deliver command move the cursor without
	// counting the deliveries. Tests only: it models delivery counts kept
	// in the leader's memory (see UnsafeQueueCountsInMemory in the broker).
	QueueFlagNoCount byte = 2
)

// Dead-letter reasons.
const (
	ReasonMaxDeliveries byte = 1
	ReasonRejected      byte = 2
)

// ReasonName returns the reason as the dead-letter header spells it.
func ReasonName(r byte) string {
	switch r {
	case ReasonMaxDeliveries:
		return "max-deliveries"
	case ReasonRejected:
		return "rejected"
	}
	return ""
}

// QueueCmd is one decoded queue command.
type QueueCmd struct {
	Op      QueueOp
	Key     PartKey
	Group   string
	Gen     uint64
	Arg     int64
	Reason  byte
	Flags   byte
	Text    string
	Offsets []int64
	Times   []int64
}

const queueHeaderLen = 32

// maxQueueText bounds the error text a command carries.
const maxQueueText = 1024

// Encode returns the command's bytes for Group.Apply.
func (c *QueueCmd) Encode() []byte {
	text := c.Text
	if len(text) > maxQueueText {
		text = text[:maxQueueText]
	}
	flags := c.Flags &^ QueueFlagTimes
	if c.Times != nil {
		flags |= QueueFlagTimes
	}
	b := make([]byte, queueHeaderLen, queueHeaderLen+len(c.Group)+len(text)+12+len(c.Offsets)*3+len(c.Times)*7)
	b[0] = dataCmdQueue
	b[1] = byte(c.Op)
	binary.BigEndian.PutUint64(b[2:], c.Key.TopicID)
	binary.BigEndian.PutUint32(b[10:], uint32(c.Key.Partition))
	binary.BigEndian.PutUint64(b[14:], c.Gen)
	binary.BigEndian.PutUint64(b[22:], uint64(c.Arg))
	b[30] = c.Reason
	b[31] = flags
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
	if c.Times != nil {
		for _, t := range c.Times {
			b = binary.AppendVarint(b, t)
		}
	}
	return b
}

// DecodeQueueCmd decodes a command Encode made.
func DecodeQueueCmd(b []byte) (QueueCmd, error) {
	var c QueueCmd
	if len(b) < queueHeaderLen || b[0] != dataCmdQueue {
		return c, fmt.Errorf("cluster: short queue command (%d bytes)", len(b))
	}
	c.Op = QueueOp(b[1])
	c.Key = PartKey{TopicID: binary.BigEndian.Uint64(b[2:]), Partition: int32(binary.BigEndian.Uint32(b[10:]))}
	c.Gen = binary.BigEndian.Uint64(b[14:])
	c.Arg = int64(binary.BigEndian.Uint64(b[22:]))
	c.Reason, c.Flags = b[30], b[31]
	r := b[queueHeaderLen:]
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
	if !ok1 || !ok2 || k <= 0 || n > uint64(len(r)) {
		return c, fmt.Errorf("cluster: malformed queue command")
	}
	r = r[k:]
	c.Offsets = make([]int64, n)
	prev := int64(0)
	for i := range c.Offsets {
		d, k := binary.Varint(r)
		if k <= 0 {
			return c, fmt.Errorf("cluster: malformed queue command offsets")
		}
		prev += d
		c.Offsets[i] = prev
		r = r[k:]
	}
	if c.Flags&QueueFlagTimes != 0 {
		c.Times = make([]int64, n)
		for i := range c.Times {
			t, k := binary.Varint(r)
			if k <= 0 {
				return c, fmt.Errorf("cluster: malformed queue command times")
			}
			c.Times[i] = t
			r = r[k:]
		}
	}
	if len(r) != 0 {
		return c, fmt.Errorf("cluster: %d bytes after a queue command", len(r))
	}
	return c, nil
}
