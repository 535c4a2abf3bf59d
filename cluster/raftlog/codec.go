package raftlog

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// Byte layout; see doc.go.
const (
	segMagic      = "SRAFTLG1"
	segHeaderSize = 24 // magic 8, first index 8, CRC32C of both 4, zero 4

	frameHeader  = 8                     // payload length 4, CRC32C of the payload 4
	payloadFixed = 8 + 8 + 8 + 1 + 4 + 4 // index, term, appended_at, type, data length, extensions length
)

// syncPoint is the top bit of a frame's type byte: set on the first entry
// of every StoreLogs call, which is written only after everything before it
// in the log was fdatasynced (the previous call returned). Recovery uses it
// to tell corruption from a torn write (see doc.go). raft's log types are
// all below it.
const syncPoint = 0x80

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDecode reasons; wrapped into a *CorruptError by the callers, which know
// the file and position.
var (
	errZero        = errors.New("zero length: end of data")
	errShort       = errors.New("frame runs past the end of the data")
	errLength      = errors.New("payload length out of bounds")
	errChecksum    = errors.New("CRC32C mismatch")
	errFieldLength = errors.New("field lengths do not add up to the payload length")
)

// entrySize is the size of l's frame on disk.
func entrySize(l *raft.Log) int {
	return frameHeader + payloadFixed + len(l.Data) + len(l.Extensions)
}

// appendEntry appends l's frame to b, marked as a sync point if sync.
func appendEntry(b []byte, l *raft.Log, sync bool) []byte {
	start := len(b)
	n := payloadFixed + len(l.Data) + len(l.Extensions)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint32(b, 0) // CRC, below
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	typ := byte(l.Type)
	if sync {
		typ |= syncPoint
	}
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Extensions)))
	b = append(b, l.Extensions...)
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+frameHeader:], castagnoli))
	return b
}

// frameLen reads the payload length at the start of b (at least 4 bytes)
// and checks it against maxPayload. It returns errZero for a zero length,
// which marks the end of the data.
func frameLen(b []byte, maxPayload int) (int, error) {
	n := binary.BigEndian.Uint32(b)
	if n == 0 {
		return 0, errZero
	}
	if n < payloadFixed || uint64(n) > uint64(maxPayload) {
		return 0, errLength
	}
	return int(n), nil
}

// frameIndex returns the raft index of the frame at the start of b, which
// holds at least frameHeader+8 bytes. It is not checked by the CRC.
func frameIndex(b []byte) uint64 { return binary.BigEndian.Uint64(b[frameHeader:]) }

// frameSync reports whether the frame at the start of b, which holds at
// least frameHeader+payloadFixed bytes, is marked as a sync point. It is
// covered by the CRC: only believe it of a frame that decoded.
func frameSync(b []byte) bool { return b[frameHeader+24]&syncPoint != 0 }

// decodeEntry decodes the frame at the start of b into l, checking its
// length against maxPayload and its CRC32C, and returns the frame's size.
// l.Data and l.Extensions point into b.
func decodeEntry(b []byte, maxPayload int, l *raft.Log) (int, error) {
	if len(b) < frameHeader {
		return 0, errShort
	}
	n, err := frameLen(b, maxPayload)
	if err != nil {
		return 0, err
	}
	if len(b)-frameHeader < n {
		return 0, errShort
	}
	p := b[frameHeader : frameHeader+n]
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return 0, errChecksum
	}
	dl := uint64(binary.BigEndian.Uint32(p[25:]))
	if dl > uint64(n-payloadFixed) {
		return 0, errFieldLength
	}
	el := uint64(binary.BigEndian.Uint32(p[29+dl:]))
	if 33+dl+el != uint64(n) {
		return 0, errFieldLength
	}
	*l = raft.Log{
		Index: binary.BigEndian.Uint64(p),
		Term:  binary.BigEndian.Uint64(p[8:]),
		Type:  raft.LogType(p[24] &^ syncPoint),
	}
	if at := int64(binary.BigEndian.Uint64(p[16:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	if dl > 0 {
		l.Data = p[29 : 29+dl : 29+dl]
	}
	if el > 0 {
		l.Extensions = p[33+dl : 33+dl+el : 33+dl+el]
	}
	return frameHeader + n, nil
}

// segHeader returns the header of the segment whose first entry is base.
func segHeader(base uint64) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.BigEndian.PutUint64(b[8:], base)
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	return b
}

// parseSegHeader checks a segment header and returns its first index.
func parseSegHeader(b []byte) (uint64, bool) {
	if len(b) < segHeaderSize || string(b[:8]) != segMagic ||
		crc32.Checksum(b[:16], castagnoli) != binary.BigEndian.Uint32(b[16:]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), true
}
