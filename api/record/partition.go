package record

import "encoding/binary"

// Murmur2 returns the 32-bit murmur2 hash of b exactly as Kafka's Java
// client computes it (org.apache.kafka.common.utils.Utils.murmur2, seed
// 0x9747b28c), so that Strata and Kafka clients put a key in the same
// partition.
func Murmur2(b []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(b)
	h := uint32(seed) ^ uint32(n)
	for len(b) >= 4 {
		k := binary.LittleEndian.Uint32(b)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		b = b[4:]
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// KeyPartition returns the partition of n that Kafka's default
// partitioner gives key: (murmur2(key) & 0x7fffffff) % n. n must be > 0.
func KeyPartition(key []byte, n int) int {
	return int(Murmur2(key)&0x7fffffff) % n
}
