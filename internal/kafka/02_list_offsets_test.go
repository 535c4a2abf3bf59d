package kafka_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/api/record"
)

// listOffsetsRaw asks one partition's offset for a timestamp (-1 latest,
// -2 earliest).
func listOffsetsRaw(t *testing.T, cl *kgo.Client, topic string, partition int32, ts int64) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(4)
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = partition, ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := direct(cl).Request(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("response %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

// TestListOffsets: earliest, latest, and by timestamp (the first record at
// or after it, with its timestamp; -1 and -1 when none is that recent),
// raw and through kadm; error codes.
func TestListOffsets(t *testing.T) {
	topic := createTopic(t, 1, nil)
	cl := newClient(t)
	if lo := listOffsetsRaw(t, cl, topic, 0, 5000); lo.ErrorCode != 0 || lo.Offset != -1 || lo.Timestamp != -1 {
		t.Fatalf("empty partition by time: %+v", lo)
	}
	// Three batches: records at 1000, 2000, 3000 ms, then 3000, 3001.
	for i, ts := range [][]int64{{1000}, {2000}, {3000, 3001}} {
		recs := make([]record.Record, len(ts))
		for j := range ts {
			recs[j] = record.Record{Value: []byte{byte(i)}, Timestamp: time.UnixMilli(ts[j])}
		}
		b, err := record.AppendBatch(nil, recs, record.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sp := produceRaw(t, cl, produceReq(topic, 0, b)); sp.ErrorCode != 0 {
			t.Fatal(kerr.ErrorForCode(sp.ErrorCode))
		}
	}
	for _, c := range []struct {
		ts, off, recTs int64
	}{
		{-2, 0, -1}, {-1, 4, -1},
		{0, 0, 1000}, {1000, 0, 1000}, {1500, 1, 2000}, {3001, 3, 3001}, {3002, -1, -1}, {5000, -1, -1},
	} {
		lo := listOffsetsRaw(t, cl, topic, 0, c.ts)
		if lo.ErrorCode != 0 || lo.Offset != c.off || lo.Timestamp != c.recTs {
			t.Errorf("timestamp %d: %v offset %d ts %d, want offset %d ts %d", c.ts, kerr.ErrorForCode(lo.ErrorCode), lo.Offset, lo.Timestamp, c.off, c.recTs)
		}
	}
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	if los, err := adm.ListStartOffsets(ctx, topic); err != nil || los[topic][0].Offset != 0 {
		t.Errorf("kadm start offsets: %v %+v", err, los)
	}
	if los, err := adm.ListEndOffsets(ctx, topic); err != nil || los[topic][0].Offset != 4 {
		t.Errorf("kadm end offsets: %v %+v", err, los)
	}
	if los, err := adm.ListOffsetsAfterMilli(ctx, 1500, topic); err != nil || los[topic][0].Offset != 1 {
		t.Errorf("kadm offsets after 1500 ms: %v %+v", err, los)
	}

	for _, c := range []struct {
		name      string
		topic     string
		partition int32
		ts        int64
		want      error
	}{
		{"unknown topic", "no-such-topic", 0, -1, kerr.UnknownTopicOrPartition},
		{"bad partition", topic, 1, -1, kerr.UnknownTopicOrPartition},
		{"bad partition by time", topic, 1, 1000, kerr.UnknownTopicOrPartition},
		{"unknown spec", topic, 0, -7, kerr.InvalidRequest},
	} {
		if lo := listOffsetsRaw(t, cl, c.topic, c.partition, c.ts); !errors.Is(kerr.ErrorForCode(lo.ErrorCode), c.want) {
			t.Errorf("%s: %v, want %v", c.name, kerr.ErrorForCode(lo.ErrorCode), c.want)
		}
	}
}
