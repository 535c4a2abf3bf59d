package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

func dialNode(t *testing.T, n *node) stratav1.StrataClient {
	t.Helper()
	conn, err := grpc.NewClient(n.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return stratav1.NewStrataClient(conn)
}

// Test 6: each bad input gets its gRPC code and leaves the log unchanged.
func TestE2EBadInputCodes(t *testing.T) {
	n := startNode(t, "")
	cl := dialNode(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cl.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "t",
		Config: &stratav1.TopicConfig{Partitions: 2, MaxBatchBytes: 4096}}); err != nil {
		t.Fatal(err)
	}
	good, err := record.AppendBatch(nil, []record.Record{{Value: []byte("hello"), Timestamp: time.Now()}},
		record.BatchOptions{ProducerID: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Produce(ctx, &stratav1.ProduceRequest{Topic: "t", Partition: 0, Batch: good}); err != nil {
		t.Fatal(err)
	}
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-2] ^= 0x55
	big, err := record.AppendBatch(nil, []record.Record{{Value: make([]byte, 8000), Timestamp: time.Now()}},
		record.BatchOptions{ProducerID: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"unknown topic", func() error {
			_, err := cl.Produce(ctx, &stratav1.ProduceRequest{Topic: "missing", Batch: good})
			return err
		}, codes.NotFound},
		{"unknown partition", func() error {
			_, err := cl.Produce(ctx, &stratav1.ProduceRequest{Topic: "t", Partition: 7, Batch: good})
			return err
		}, codes.NotFound},
		{"bad crc", func() error {
			_, err := cl.Produce(ctx, &stratav1.ProduceRequest{Topic: "t", Batch: badCRC})
			return err
		}, codes.InvalidArgument},
		{"garbage batch", func() error {
			_, err := cl.Produce(ctx, &stratav1.ProduceRequest{Topic: "t", Batch: []byte("not a batch at all")})
			return err
		}, codes.InvalidArgument},
		{"batch over max bytes", func() error {
			_, err := cl.Produce(ctx, &stratav1.ProduceRequest{Topic: "t", Batch: big})
			return err
		}, codes.ResourceExhausted},
		{"invalid topic name", func() error {
			_, err := cl.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "no spaces allowed"})
			return err
		}, codes.InvalidArgument},
		{"topic exists", func() error {
			_, err := cl.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "t"})
			return err
		}, codes.AlreadyExists},
		{"offset out of range", func() error {
			_, err := cl.Fetch(ctx, &stratav1.FetchRequest{Topic: "t", Partition: 0, Offset: 99})
			return err
		}, codes.OutOfRange},
		{"fetch unknown topic", func() error {
			_, err := cl.Fetch(ctx, &stratav1.FetchRequest{Topic: "missing"})
			return err
		}, codes.NotFound},
		{"unknown group", func() error {
			_, err := cl.DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: "nobody"})
			return err
		}, codes.NotFound},
		{"unknown producer id", func() error {
			_, err := cl.InitProducer(ctx, &stratav1.InitProducerRequest{ProducerId: 12345})
			return err
		}, codes.NotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.want {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.want)
			}
			d, err := cl.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "t"})
			if err != nil {
				t.Fatal(err)
			}
			if hw := d.Topic.Partitions[0].HighWatermark; hw != 1 {
				t.Fatalf("high watermark %d after a refused request, want 1", hw)
			}
		})
	}
	// The stream reports per-request errors without ending the stream.
	st, err := cl.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range [][]byte{badCRC, good} {
		if err := st.Send(&stratav1.ProduceRequest{Topic: "t", Batch: b, CorrelationId: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	r0, err := st.Recv()
	if err != nil || codes.Code(r0.ErrorCode) != codes.InvalidArgument || r0.CorrelationId != 0 {
		t.Fatalf("stream response 0: %+v %v", r0, err)
	}
	r1, err := st.Recv()
	if err != nil || r1.ErrorCode != 0 || r1.BaseOffset != 1 || r1.CorrelationId != 1 {
		t.Fatalf("stream response 1: %+v %v", r1, err)
	}
	_ = st.CloseSend()
}
