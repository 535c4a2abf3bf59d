package client

import (
	"bytes"
	"reflect"
	"testing"
	"unicode/utf8"
	"unsafe"

	stratav1 "github.com/stratalog/strata/api/v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// queueResponseSeeds are encodings decodeQueueMessages must decode as
// proto.Unmarshal and queueMessageFromProto do: well-formed responses
// (null and empty keys, headers, negative numbers), repeated and unknown
// fields, wrong wire types and truncated bytes.
func queueResponseSeeds(t testing.TB) [][]byte {
	t.Helper()
	full, err := proto.Marshal(&stratav1.QueueReceiveResponse{Messages: []*stratav1.QueueMessage{
		{Partition: 2, Offset: 1 << 40, Key: []byte("k"), Value: bytes.Repeat([]byte{7}, 300), TimestampMs: 1700000000000,
			Deliveries: 3, LeaseDeadlineMs: 1700000030000,
			Headers: []*stratav1.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b"}, {Key: "", Value: []byte("x")}}},
		{Partition: -1, Offset: -5, NullKey: true, Value: []byte("v")},
		{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var msg []byte // a message with fields twice, an unknown field and a wrong wire type
	msg = protowire.AppendTag(msg, 4, protowire.BytesType)
	msg = protowire.AppendBytes(msg, []byte("first"))
	msg = protowire.AppendTag(msg, 2, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 9)
	msg = protowire.AppendTag(msg, 99, protowire.BytesType)
	msg = protowire.AppendBytes(msg, []byte("x"))
	msg = protowire.AppendTag(msg, 3, protowire.VarintType) // key as a varint: unknown
	msg = protowire.AppendVarint(msg, 1)
	msg = protowire.AppendTag(msg, 4, protowire.BytesType)
	msg = protowire.AppendBytes(msg, []byte("second"))
	msg = protowire.AppendTag(msg, 9, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 2) // true
	msg = protowire.AppendTag(msg, 9, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 0) // false: the last wins
	msg = protowire.AppendTag(msg, 8, protowire.Fixed64Type)
	msg = protowire.AppendFixed64(msg, 1)
	var odd []byte
	odd = protowire.AppendTag(odd, 1, protowire.BytesType)
	odd = protowire.AppendBytes(odd, msg)
	odd = protowire.AppendTag(odd, 1, protowire.VarintType) // messages as a varint: unknown
	odd = protowire.AppendVarint(odd, 5)
	odd = protowire.AppendTag(odd, 1, protowire.BytesType)
	odd = protowire.AppendBytes(odd, nil) // an empty message
	return [][]byte{full, full[:len(full)-1], full[:7], odd, {0x0a, 0xff}, {0x00}, {0x0c}, {0x0a, 0x02, 0x2a, 0x05}}
}

// checkQueueResponse fails when decodeQueueMessages and proto.Unmarshal
// followed by queueMessageFromProto disagree on b, or when the values do
// not alias b. It accepts one difference: a header key that is not UTF-8,
// which proto.Unmarshal refuses and the hand decoder takes as it is.
func checkQueueResponse(t *testing.T, b []byte) {
	t.Helper()
	var m stratav1.QueueReceiveResponse
	wantErr := proto.Unmarshal(b, &m)
	got, gotErr := decodeQueueMessages(b, "topic")
	if gotErr != nil && wantErr == nil {
		t.Fatalf("%x: error %v, proto.Unmarshal decodes it", b, gotErr)
	}
	if wantErr != nil {
		if gotErr == nil && utf8.Valid(b) {
			t.Fatalf("%x: decoded, proto.Unmarshal says %v", b, wantErr)
		}
		return
	}
	want := make([]QueueMessage, len(m.Messages))
	for i, pm := range m.Messages {
		want[i] = queueMessageFromProto(pm, "topic")
	}
	if len(want) == 0 {
		want = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%x: decoded\n%+v\nproto.Unmarshal decodes\n%+v", b, got, want)
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for _, qm := range got {
		if v := qm.Value; len(v) > 0 {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
			if p < start || p+uintptr(len(v)) > start+uintptr(len(b)) || cap(v) != len(v) {
				t.Fatalf("%x: value %q is a copy or has spare capacity", b, v)
			}
		}
	}
}

func TestDecodeQueueMessages(t *testing.T) {
	for _, b := range queueResponseSeeds(t) {
		checkQueueResponse(t, b)
	}
}

// TestQueueCodecCopies checks that the messages survive the reuse of the
// buffers gRPC handed to Unmarshal, and that other messages go through
// the standard codec.
func TestQueueCodecCopies(t *testing.T) {
	in := &stratav1.QueueReceiveResponse{Messages: []*stratav1.QueueMessage{{Offset: 4, Value: []byte("value"), Key: []byte("key")}}}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	half := len(b) / 2
	data := mem.BufferSlice{mem.SliceBuffer(b[:half]), mem.SliceBuffer(b[half:])}
	var out stratav1.QueueReceiveResponse
	if err := (responseCodec{}).Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	clear(b)
	got, err := queueMessages(&out, "t")
	if err != nil || len(got) != 1 || string(got[0].Value) != "value" || string(got[0].Key) != "key" || got[0].Offset != 4 {
		t.Fatalf("after the input was cleared: %+v, %v", got, err)
	}
	var req stratav1.QueueReceiveRequest
	rb, _ := proto.Marshal(&stratav1.QueueReceiveRequest{Topic: "t", MaxMessages: 5})
	if err := (responseCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(rb)}, &req); err != nil || req.Topic != "t" || req.MaxMessages != 5 {
		t.Fatalf("QueueReceiveRequest: %v, %v", &req, err)
	}
}

// FuzzDecodeQueueMessages checks the hand decoder against proto.Unmarshal
// on any bytes; its seeds run as ordinary tests.
func FuzzDecodeQueueMessages(f *testing.F) {
	for _, b := range queueResponseSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkQueueResponse)
}
