package server

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/broker"
)

func testQueueMessages(n int) []broker.QueueMessage {
	now := time.UnixMilli(1_700_000_000_000)
	msgs := make([]broker.QueueMessage, n)
	for i := range msgs {
		m := &msgs[i]
		m.Partition, m.Offset, m.Deliveries = int32(i%3), int64(i), int32(1+i%4)
		m.Value = fmt.Appendf(nil, "value-%d", i)
		m.Timestamp, m.LeaseUntil = now.Add(time.Duration(i)*time.Millisecond), now.Add(30*time.Second)
		if i%2 == 0 {
			m.Key = fmt.Appendf(nil, "key-%d", i)
		}
		for j := 0; j < i%3; j++ {
			m.Headers = append(m.Headers, record.Header{Key: fmt.Sprintf("h%d", j), Value: fmt.Appendf(nil, "v%d-%d", i, j)})
		}
	}
	return msgs
}

// TestReceiveResponse checks the conversion field by field against
// messages built one by one, with and without keys and headers.
func TestReceiveResponse(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 100} {
		msgs := testQueueMessages(n)
		got := receiveResponse(msgs)
		want := &stratav1.QueueReceiveResponse{Messages: make([]*stratav1.QueueMessage, 0, n)}
		for _, m := range msgs {
			qm := &stratav1.QueueMessage{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value,
				TimestampMs: m.Timestamp.UnixMilli(), Deliveries: m.Deliveries, LeaseDeadlineMs: m.LeaseUntil.UnixMilli(),
				NullKey: m.Key == nil}
			for _, h := range m.Headers {
				qm.Headers = append(qm.Headers, &stratav1.RecordHeader{Key: h.Key, Value: h.Value})
			}
			want.Messages = append(want.Messages, qm)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%d messages: the response differs from one built message by message", n)
		}
		// Each message's headers are its own: appending to one must not
		// overwrite the next message's.
		for i, m := range got.Messages {
			if len(m.Headers) != cap(m.Headers) {
				t.Fatalf("message %d: headers %d long with room for %d", i, len(m.Headers), cap(m.Headers))
			}
		}
	}
}

// TestReceiveResponseAllocs checks that a receive's response costs the
// same few allocations for 10 messages as for 1,000.
func TestReceiveResponseAllocs(t *testing.T) {
	for _, n := range []int{10, 1000} {
		msgs := testQueueMessages(n)
		if allocs := testing.AllocsPerRun(20, func() { receiveResponse(msgs) }); allocs > 5 {
			t.Errorf("%d messages: %.0f allocations, want at most 5", n, allocs)
		}
	}
}
