package server

import (
	"context"
	"encoding/binary"

	"github.com/stratalog/strata/api/bufpool"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/broker"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Buffer ownership, step by step:
//
//  1. leaseInterceptor puts an empty fetchLeaseSlot in the context of each
//     unary call.
//  2. Server.Fetch reads with broker.FetchLeased and stores the response
//     and its lease in the slot (keepLease). Without a slot (a direct call,
//     a server without these options) the lease is dropped: the buffer is
//     never recycled, so the records stay valid for whoever holds them.
//  3. leaseInterceptor replies with a *leasedFetch that pairs the response
//     with its lease, but only if the handler's reply is the very response
//     in the slot; otherwise the lease is dropped as in 2.
//  4. fetchCodec.Marshal wraps the records in a mem.Buffer whose pool is
//     the leasedFetch: gRPC frees that buffer once it has written the bytes
//     (or failed to), and only then does Put release the lease. On any path
//     where the records are not handed to gRPC, Marshal releases the lease
//     itself, after the last read of the records.
//  5. broker.FetchLease.Release acts once; each lease is a fresh value, so a
//     stale reference cannot release a buffer that serves another fetch.
//
// A response that did not come through steps 2 and 3 is an ordinary
// *stratav1.FetchResponse and has no lease, so nothing of it can reach the
// pool.

// fetchLeaseKey is the context key of a fetchLeaseSlot.
type fetchLeaseKey struct{}

// fetchLeaseSlot carries a lease from Server.Fetch to leaseInterceptor.
type fetchLeaseSlot struct {
	resp  *stratav1.FetchResponse
	lease *broker.FetchLease
}

// leaseInterceptor gives Fetch a slot for its lease and pairs the lease
// with the reply. It returns other calls' replies untouched.
func leaseInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod != stratav1.Strata_Fetch_FullMethodName {
		return handler(ctx, req)
	}
	slot := &fetchLeaseSlot{}
	reply, err := handler(context.WithValue(ctx, fetchLeaseKey{}, slot), req)
	if slot.lease == nil {
		return reply, err
	}
	if m, ok := reply.(*stratav1.FetchResponse); ok && err == nil && m == slot.resp {
		return &leasedFetch{resp: m, lease: slot.lease}, nil
	}
	// Another reply than the leased one: whatever still aliases the
	// buffer is out of our sight, so it is not recycled.
	return reply, err
}

// keepLease hands lease, which owns the buffer of resp.Records, to the
// interceptor of this call, if there is one.
func keepLease(ctx context.Context, resp *stratav1.FetchResponse, lease *broker.FetchLease) {
	if slot, ok := ctx.Value(fetchLeaseKey{}).(*fetchLeaseSlot); ok && lease != nil {
		slot.resp, slot.lease = resp, lease
	}
}

// leasedFetch is a FetchResponse whose records alias a pooled buffer that
// lease owns. It is also the mem.BufferPool of that one buffer.
type leasedFetch struct {
	resp    *stratav1.FetchResponse
	lease   *broker.FetchLease
	records []byte // what the mem.Buffer points at
}

// Get is never called: a mem.Buffer only puts its data back.
func (*leasedFetch) Get(int) *[]byte { panic("server: leasedFetch is not a pool to get from") }

// Put releases the lease: gRPC is done with the records.
func (l *leasedFetch) Put(*[]byte) { l.lease.Release() }

// fetchCodec is the server's gRPC codec. It marshals a FetchResponse as
// its small protobuf header, the records as they are (no copy) and its
// trailing fields; everything else goes through the standard proto codec.
type fetchCodec struct{}

// Name returns the name of the proto codec: the wire format is the same.
func (fetchCodec) Name() string { return protocodec.Name }

// Unmarshal decodes with the standard proto codec.
func (fetchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(protocodec.Name).Unmarshal(data, v)
}

// Marshal encodes v as proto.Marshal would.
func (fetchCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *leasedFetch:
		return marshalFetch(m.resp, m)
	case *stratav1.FetchResponse:
		return marshalFetch(m, nil)
	}
	return marshalProto(v)
}

// marshalProto is the standard proto codec's Marshal with buffers from
// bufpool rather than gRPC's default pool, which zeroes each buffer before
// proto overwrites it (a tenth of the server's CPU in a queue benchmark of
// 1 KiB records).
func marshalProto(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return encoding.GetCodecV2(protocodec.Name).Marshal(v)
	}
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true} // safe: Size just ran
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	pool := bufpool.Shared()
	buf := pool.Get(size)
	b, err := opts.MarshalAppend((*buf)[:0], m)
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	*buf = b // the same array unless proto outgrew it; then Put drops it
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// marshalFetch encodes m. Its records go out as a mem.Buffer over their
// own bytes: pooled by l when l is not nil, otherwise never freed (they
// belong to m, which nobody changes once it is sent).
func marshalFetch(m *stratav1.FetchResponse, l *leasedFetch) (mem.BufferSlice, error) {
	if m == nil || len(m.ProtoReflect().GetUnknown()) > 0 || len(m.Records) < minAliasBytes {
		// Rare or small: the standard codec copies, so the buffer is free
		// as soon as it returns.
		out, err := marshalProto(m)
		if l != nil {
			l.lease.Release()
		}
		return out, err
	}
	// Field order as proto.Marshal writes it: 1 (records), 2, 3.
	var hdr [3 * (1 + binary.MaxVarintLen64)]byte // three tags and varints
	b := protowire.AppendTag(hdr[:0], 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(m.Records)))
	headLen := len(b)
	if m.HighWatermark != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.HighWatermark))
	}
	if m.LogStartOffset != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.LogStartOffset))
	}
	small := append([]byte(nil), b...) // one allocation for head and tail
	out := mem.BufferSlice{mem.SliceBuffer(small[:headLen:headLen])}
	if l != nil {
		l.records = m.Records
		out = append(out, mem.NewBuffer(&l.records, l))
	} else {
		out = append(out, mem.SliceBuffer(m.Records))
	}
	if len(small) > headLen {
		out = append(out, mem.SliceBuffer(small[headLen:]))
	}
	return out, nil
}

// minAliasBytes is the size below which records are copied rather than
// aliased: a copy that small costs less than the buffer bookkeeping.
const minAliasBytes = 4096

var _ encoding.CodecV2 = fetchCodec{}
