package client

import (
	"fmt"
	"time"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// queueMessages returns the messages of a QueueReceive response, decoded
// from the bytes responseCodec kept or, for a response decoded otherwise,
// converted from its fields.
func queueMessages(resp *stratav1.QueueReceiveResponse, topic string) ([]QueueMessage, error) {
	if raw := resp.ProtoReflect().GetUnknown(); len(raw) > 0 && len(resp.GetMessages()) == 0 {
		return decodeQueueMessages(raw, topic)
	}
	out := make([]QueueMessage, len(resp.GetMessages()))
	for i, m := range resp.GetMessages() {
		out[i] = queueMessageFromProto(m, topic)
	}
	return out, nil
}

// queueMessageFromProto converts one decoded message.
func queueMessageFromProto(m *stratav1.QueueMessage, topic string) QueueMessage {
	qm := QueueMessage{Topic: topic, Partition: m.GetPartition(), Offset: m.GetOffset(), Key: m.GetKey(),
		Value: m.GetValue(), Timestamp: time.UnixMilli(m.GetTimestampMs()), Deliveries: m.GetDeliveries(),
		LeaseDeadline: time.UnixMilli(m.GetLeaseDeadlineMs())}
	if m.GetNullKey() {
		qm.Key = nil
	} else if qm.Key == nil {
		qm.Key = []byte{}
	}
	for _, h := range m.GetHeaders() {
		qm.Headers = append(qm.Headers, record.Header{Key: h.GetKey(), Value: h.GetValue()})
	}
	return qm
}

// decodeQueueMessages decodes a QueueReceiveResponse (field 1: repeated
// QueueMessage) as proto.Unmarshal and queueMessageFromProto would, with
// keys and values aliasing b (capacity clipped). Unknown fields are
// skipped; for a field given twice the last wins, as in protobuf.
func decodeQueueMessages(b []byte, topic string) ([]QueueMessage, error) {
	var out []QueueMessage
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		qm, err := decodeQueueMessage(v, topic)
		if err != nil {
			return fmt.Errorf("message %d: %w", len(out), err)
		}
		out = append(out, qm)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: queue receive response: %w", err)
	}
	return out, nil
}

// decodeQueueMessage decodes one QueueMessage.
func decodeQueueMessage(b []byte, topic string) (QueueMessage, error) {
	qm := QueueMessage{Topic: topic}
	var ts, lease int64
	var key []byte
	nullKey := false
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case typ == protowire.VarintType && num == 1:
			qm.Partition = int32(x)
		case typ == protowire.VarintType && num == 2:
			qm.Offset = int64(x)
		case typ == protowire.BytesType && num == 3:
			key = v
		case typ == protowire.BytesType && num == 4:
			qm.Value = v
		case typ == protowire.BytesType && num == 5:
			h, err := decodeHeader(v)
			if err != nil {
				return err
			}
			qm.Headers = append(qm.Headers, h)
		case typ == protowire.VarintType && num == 6:
			ts = int64(x)
		case typ == protowire.VarintType && num == 7:
			qm.Deliveries = int32(x)
		case typ == protowire.VarintType && num == 8:
			lease = int64(x)
		case typ == protowire.VarintType && num == 9:
			nullKey = x != 0
		}
		return nil
	})
	if err != nil {
		return QueueMessage{}, err
	}
	switch {
	case nullKey:
	case key == nil:
		qm.Key = []byte{}
	default:
		qm.Key = key
	}
	qm.Timestamp, qm.LeaseDeadline = time.UnixMilli(ts), time.UnixMilli(lease)
	return qm, nil
}

// decodeHeader decodes one RecordHeader.
func decodeHeader(b []byte) (record.Header, error) {
	var h record.Header
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case typ == protowire.BytesType && num == 1:
			h.Key = string(v)
		case typ == protowire.BytesType && num == 2:
			h.Value = v
		}
		return nil
	})
	return h, err
}

// walkFields calls fn with each field of the protobuf message b: a
// length-delimited field's bytes (capacity clipped) in v, a varint's value
// in x. Fields of other wire types are skipped after being checked.
func walkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			x, vn := protowire.ConsumeVarint(b)
			if vn < 0 {
				return protowire.ParseError(vn)
			}
			if err := fn(num, typ, nil, x); err != nil {
				return err
			}
			b = b[vn:]
		case protowire.BytesType:
			v, vn := protowire.ConsumeBytes(b)
			if vn < 0 {
				return protowire.ParseError(vn)
			}
			if err := fn(num, typ, v[:len(v):len(v)], 0); err != nil {
				return err
			}
			b = b[vn:]
		default:
			vn := protowire.ConsumeFieldValue(num, typ, b)
			if vn < 0 {
				return protowire.ParseError(vn)
			}
			b = b[vn:]
		}
	}
	return nil
}
