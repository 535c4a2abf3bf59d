package raftlog

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// Byte layout; see doc.go.
const (
	segMagic      = "SRAFTLG2"
	segMagicV1    = "SRAFTLG1" // before salts: read, never written
	segHeaderSize = 24         // magic 8, first index 8, salt 4, CRC32C of the 20 bytes before 4 (v1: CRC32C of 16, zero 4)

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

// frameCRC is the CRC of a frame's payload p in a segment whose salt is
// salt: CRC32C continued from salt instead of 0. The salt is random per
// segment and never leaves the store, so bytes a client chose (a record
// holding a whole frame) cannot pass for a sync point: their CRC, for any
// payload and length, differs from the salted one unless salt is 0, since
// crc32.Update(salt, t, p) = crc32.Update(0, t, p) xor a function of salt
// and len(p) that is one-to-one in salt. A salt of 0 is the plain CRC32C of
// SRAFTLG1 segments.
func frameCRC(salt uint32, p []byte) uint32 { return crc32.Update(salt, castagnoli, p) }

// newSalt returns a random salt for a new segment, never 0 (which would be
// no salt).
func newSalt() uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
		if v := binary.BigEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

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

// appendEntry appends l's frame for a segment of salt salt to b, marked as a
// sync point if sync.
func appendEntry(b []byte, l *raft.Log, sync bool, salt uint32) []byte {
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
	binary.BigEndian.PutUint32(b[start+4:], frameCRC(salt, b[start+frameHeader:]))
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

// decodeEntry decodes the frame at the start of b, from a segment of salt
// salt, into l, checking its length against maxPayload and its CRC, and
// returns the frame's size. l.Data and l.Extensions point into b.
func decodeEntry(b []byte, maxPayload int, salt uint32, l *raft.Log) (int, error) {
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
	if frameCRC(salt, p) != binary.BigEndian.Uint32(b[4:]) {
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

// segHeader returns the header of the segment whose first entry is base
// and whose salt is salt.
func segHeader(base uint64, salt uint32) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.BigEndian.PutUint64(b[8:], base)
	binary.BigEndian.PutUint32(b[16:], salt)
	binary.BigEndian.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
	return b
}

// parseSegHeader checks a segment header and returns its first index and
// salt: 0 for an SRAFTLG1 header, which has none.
func parseSegHeader(b []byte) (base uint64, salt uint32, ok bool) {
	if len(b) < segHeaderSize {
		return 0, 0, false
	}
	switch string(b[:8]) {
	case segMagic:
		salt = binary.BigEndian.Uint32(b[16:])
		if salt == 0 || crc32.Checksum(b[:20], castagnoli) != binary.BigEndian.Uint32(b[20:]) {
			return 0, 0, false
		}
	case segMagicV1:
		if crc32.Checksum(b[:16], castagnoli) != binary.BigEndian.Uint32(b[16:]) {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), salt, true
}

// oneBitOff reports whether the bad header b becomes a valid header of the
// segment base with one bit flipped back. A roll that no fsync completed
// leaves the header's sector zero or whole (disks write sectors whole); a
// header one bit off a valid one was written whole and damaged since.
func oneBitOff(b []byte, base uint64) bool {
	if len(b) < segHeaderSize {
		return false
	}
	h := append([]byte(nil), b[:segHeaderSize]...)
	for i := range h {
		for bit := range 8 {
			h[i] ^= 1 << bit
			got, _, ok := parseSegHeader(h)
			h[i] ^= 1 << bit
			if ok && got == base {
				return true
			}
		}
	}
	return false
}
