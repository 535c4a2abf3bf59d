package record

import "math/bits"

// Zig-zag varints, written by hand: they are the inner loop of both
// encoding and decoding, and the common one-byte case stays inline.

// varintLen returns the encoded size of v.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// appendVarint appends v zig-zag encoded.
func appendVarint(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

// bytesLen returns the encoded size of a length-prefixed byte string
// (nil is length -1).
func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// appendBytes appends b with its length; nil becomes length -1.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 1) // zig-zag -1
	}
	dst = appendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// readVarint reads a zig-zag varint of at most 10 bytes at b[i:]. It
// returns the value and the position after it, or ok == false when the
// bytes end first or the varint is too long.
func readVarint(b []byte, i int) (v int64, next int, ok bool) {
	if i < len(b) && b[i] < 0x80 {
		u := uint64(b[i])
		return int64(u>>1) ^ -int64(u&1), i + 1, true
	}
	var u uint64
	var s uint
	for n := 0; n < 10; n++ {
		if i >= len(b) {
			return 0, i, false
		}
		c := b[i]
		i++
		if c < 0x80 {
			if n == 9 && c > 1 {
				return 0, i, false
			}
			u |= uint64(c) << s
			return int64(u>>1) ^ -int64(u&1), i, true
		}
		u |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, i, false
}
