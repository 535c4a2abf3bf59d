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

// responseCodec is the gRPC codec of Fetch and QueueReceive calls. It
// marshals as the standard proto codec does, but decodes the two
// responses that carry records so that the records alias one copy of the
// message instead of being copied again, field by field:
//
//   - a FetchResponse gets its records field aliasing that copy
//     (unmarshalFetchResponse); the standard codec copied the message
//     into a pooled buffer and proto.Unmarshal then copied the records
//     again, so every fetched byte was copied twice;
//   - a QueueReceiveResponse keeps that copy as its unknown fields, for
//     queueMessages to decode by hand (see queue_codec.go); the standard
//     path copied every value twice and built a protobuf message per
//     record.
//
// The copy is made for each response and never reused, which keeps the
// promise that records alias bytes the client never reuses.
type responseCodec struct{}

// responseCallOption makes a call use responseCodec. ForceCodecV2 keeps
// the content-subtype ("proto"), so the server sees an ordinary call.
var responseCallOption = grpc.ForceCodecV2(responseCodec{})

// Marshal marshals v with the standard proto codec.
func (responseCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2(protocodec.Name).Marshal(v)
}

// Unmarshal decodes the two responses that carry records from one copy of
// data (gRPC frees data after Unmarshal returns, so the records need a
// copy that belongs to them); any other message goes to the standard proto
// codec.
func (responseCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *stratav1.FetchResponse:
		return unmarshalFetchResponse(data.Materialize(), m)
	case *stratav1.QueueReceiveResponse:
		m.Reset()
		m.ProtoReflect().SetUnknown(data.Materialize())
		return nil
	}
	return encoding.GetCodecV2(protocodec.Name).Unmarshal(data, v)
}

// Name returns the name of the proto codec: the wire format is the same.
func (responseCodec) Name() string { return protocodec.Name }

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
