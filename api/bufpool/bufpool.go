// Package bufpool is a gRPC buffer pool (google.golang.org/grpc/mem) that
// does not zero the buffers it hands out.
//
// gRPC's default pool clears every buffer on Get, so that a buffer never
// shows bytes of an earlier message. Every user of a pooled buffer in gRPC
// (reading a frame, marshalling a message) overwrites the length it asked
// for, so the clearing protects nothing there, and it cost a tenth of a
// Strata server's CPU and as much of a consumer's: each fetched or
// received megabyte was zeroed once more before being overwritten. Only
// code that overwrites the whole length it gets may use this pool.
package bufpool

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Tiers are powers of two from 1<<minShift to 1<<maxShift bytes; larger
// buffers are allocated and left to the garbage collector.
const (
	minShift = 8
	maxShift = 24
)

// Pool is a mem.BufferPool of power-of-two tiers that does not zero.
type Pool struct {
	tiers [maxShift - minShift + 1]sync.Pool
}

var _ mem.BufferPool = (*Pool)(nil)

// shared is the process's pool.
var shared Pool

// Shared returns the process's pool, shared by its gRPC clients and
// servers.
func Shared() *Pool { return &shared }

// tier returns the tier of the smallest buffer that holds n bytes.
func tier(n int) int {
	if n <= 1<<minShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minShift
}

// Get returns a buffer of length size whose bytes are not cleared.
func (p *Pool) Get(size int) *[]byte {
	t := tier(size)
	if t >= len(p.tiers) {
		b := make([]byte, size)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:size]
		return b
	}
	b := make([]byte, size, 1<<(t+minShift))
	return &b
}

// Put returns a buffer that Get gave out; others are dropped.
func (p *Pool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minShift || c&(c-1) != 0 {
		return // not one of ours: its capacity is not a tier's
	}
	t := bits.Len(uint(c)) - 1 - minShift
	if t >= len(p.tiers) {
		return
	}
	*b = (*b)[:0]
	p.tiers[t].Put(b)
}
