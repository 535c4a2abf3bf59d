package client

import (
	"fmt"

	stratav1 "github.com/stratalog/strata/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// fetchCodec is the gRPC codec of Fetch calls. It marshals as the
// standard proto codec does, but unmarshals a FetchResponse with its
// records aliasing one buffer of its own: the standard codec copies the
// message into a pooled buffer and proto.Unmarshal then copies the records
// field again, so every fetched byte was copied twice. The buffer is
// allocated for each response and never reused, which keeps the promise
// of FetchPartition.Records (records alias bytes the consumer never
// reuses).
type fetchCodec struct{}

// fetchCallOption makes a call use fetchCodec. ForceCodecV2 keeps the
// content-subtype ("proto"), so the server sees an ordinary call.
var fetchCallOption = grpc.ForceCodecV2(fetchCodec{})

// Marshal marshals v with the standard proto codec.
func (fetchCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2(protocodec.Name).Marshal(v)
}

// Unmarshal copies data once and decodes a FetchResponse from it; any
// other message goes to the standard proto codec.
func (fetchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*stratav1.FetchResponse)
	if !ok {
		return encoding.GetCodecV2(protocodec.Name).Unmarshal(data, v)
	}
	// gRPC frees data after Unmarshal returns: the records need a copy
	// that belongs to them.
	return unmarshalFetchResponse(data.Materialize(), m)
}

// Name returns the name of the proto codec: the wire format is the same.
func (fetchCodec) Name() string { return protocodec.Name }

// unmarshalFetchResponse decodes b into m as proto.Unmarshal does, except
// that m.Records aliases b (its capacity clipped to its length). Fields
// other than records (and a records field of the wrong wire type) are
// handed to proto.Unmarshal, so unknown fields and errors behave as usual.
func unmarshalFetchResponse(b []byte, m *stratav1.FetchResponse) error {
	m.Reset()
	var records, rest []byte
	for p := b; len(p) > 0; {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return fmt.Errorf("client: fetch response: %w", protowire.ParseError(n))
		}
		if num == 1 && typ == protowire.BytesType {
			v, vn := protowire.ConsumeBytes(p[n:])
			if vn < 0 {
				return fmt.Errorf("client: fetch response records: %w", protowire.ParseError(vn))
			}
			records = v[:len(v):len(v)] // the last occurrence wins, as in proto
			p = p[n+vn:]
			continue
		}
		vn := protowire.ConsumeFieldValue(num, typ, p[n:])
		if vn < 0 {
			return fmt.Errorf("client: fetch response field %d: %w", num, protowire.ParseError(vn))
		}
		rest = append(rest, p[:n+vn]...)
		p = p[n+vn:]
	}
	if len(rest) > 0 {
		if err := proto.Unmarshal(rest, m); err != nil {
			return fmt.Errorf("client: fetch response: %w", err)
		}
	}
	if records != nil {
		m.Records = records
	}
	return nil
}
