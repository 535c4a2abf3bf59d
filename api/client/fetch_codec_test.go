package client

import (
	"bytes"
	"testing"
	"unsafe"

	stratav1 "github.com/stratalog/strata/api/v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// fetchResponseSeeds are encodings unmarshalFetchResponse must decode as
// proto.Unmarshal does: well-formed messages, repeated and unknown fields,
// a records field of the wrong wire type and truncated bytes.
func fetchResponseSeeds(t testing.TB) [][]byte {
	t.Helper()
	full, err := proto.Marshal(&stratav1.FetchResponse{Records: bytes.Repeat([]byte{7}, 300), HighWatermark: 42, LogStartOffset: 3})
	if err != nil {
		t.Fatal(err)
	}
	var twice []byte
	twice = protowire.AppendTag(twice, 1, protowire.BytesType)
	twice = protowire.AppendBytes(twice, []byte("first"))
	twice = protowire.AppendTag(twice, 2, protowire.VarintType)
	twice = protowire.AppendVarint(twice, 9)
	twice = protowire.AppendTag(twice, 99, protowire.BytesType) // unknown
	twice = protowire.AppendBytes(twice, []byte("x"))
	twice = protowire.AppendTag(twice, 1, protowire.BytesType)
	twice = protowire.AppendBytes(twice, []byte("second"))
	var wrongType []byte
	wrongType = protowire.AppendTag(wrongType, 1, protowire.VarintType)
	wrongType = protowire.AppendVarint(wrongType, 5)
	var empty []byte
	empty = protowire.AppendTag(empty, 1, protowire.BytesType)
	empty = protowire.AppendBytes(empty, nil)
	return [][]byte{nil, full, full[:len(full)-1], full[:5], twice, wrongType, empty, {0x0a, 0xff}, {0x00}, {0x0c}}
}

// checkFetchResponse fails when unmarshalFetchResponse and proto.Unmarshal
// disagree on b, or when the records do not alias b.
func checkFetchResponse(t *testing.T, b []byte) {
	t.Helper()
	var want, got stratav1.FetchResponse
	wantErr := proto.Unmarshal(b, &want)
	gotErr := unmarshalFetchResponse(b, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%x: error %v, proto.Unmarshal says %v", b, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !proto.Equal(&want, &got) {
		t.Fatalf("%x: decoded %v, proto.Unmarshal decodes %v", b, &got, &want)
	}
	if r := got.Records; len(r) > 0 {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		p := uintptr(unsafe.Pointer(unsafe.SliceData(r)))
		if p < start || p+uintptr(len(r)) > start+uintptr(len(b)) {
			t.Fatalf("%x: records are a copy, not an alias of the input", b)
		}
		if cap(r) != len(r) {
			t.Fatalf("%x: records have capacity %d beyond their length %d", b, cap(r), len(r))
		}
	}
}

func TestUnmarshalFetchResponse(t *testing.T) {
	for _, b := range fetchResponseSeeds(t) {
		checkFetchResponse(t, b)
	}
}

// TestFetchCodecCopies checks that the records survive the reuse of the
// buffers gRPC handed to Unmarshal.
func TestFetchCodecCopies(t *testing.T) {
	in := &stratav1.FetchResponse{Records: []byte("records"), HighWatermark: 7}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	half := len(b) / 2
	data := mem.BufferSlice{mem.SliceBuffer(b[:half]), mem.SliceBuffer(b[half:])}
	var out stratav1.FetchResponse
	if err := (responseCodec{}).Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	clear(b)
	if !proto.Equal(in, &out) {
		t.Fatalf("got %v after the input was cleared, want %v", &out, in)
	}
	// Other messages go through the standard codec.
	var req stratav1.FetchRequest
	rb, _ := proto.Marshal(&stratav1.FetchRequest{Topic: "t", Offset: 5})
	if err := (responseCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(rb)}, &req); err != nil || req.Topic != "t" || req.Offset != 5 {
		t.Fatalf("FetchRequest: %v, %v", &req, err)
	}
}

// FuzzUnmarshalFetchResponse checks the hand decoder against
// proto.Unmarshal on any bytes; its seeds run as ordinary tests.
func FuzzUnmarshalFetchResponse(f *testing.F) {
	for _, b := range fetchResponseSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkFetchResponse)
}
