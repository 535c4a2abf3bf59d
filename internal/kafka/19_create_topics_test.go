package kafka_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var topicSeq atomic.Int64

// topicName returns a topic name of its own for a test.
func topicName(t testing.TB) string {
	t.Helper()
	r := strings.NewReplacer("/", ".", " ", "_", "#", "_")
	return fmt.Sprintf("%s-%d", r.Replace(t.Name()), topicSeq.Add(1))
}

// createTopic creates a topic through the Kafka listener and returns its
// name.
func createTopic(t testing.TB, partitions int32, configs map[string]*string) string {
	t.Helper()
	name := topicName(t)
	adm := kadm.NewClient(newClient(t))
	if _, err := adm.CreateTopic(ctxT(t), partitions, -1, configs, name); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return name
}

// TestCreateTopicsKadm: kadm creates a topic with mapped configs, which
// DescribeTopicConfigs reads back; a second creation is
// TOPIC_ALREADY_EXISTS; compaction, unknown configs and bad values are
// INVALID_CONFIG; ValidateOnly creates nothing.
func TestCreateTopicsKadm(t *testing.T) {
	ctx := ctxT(t)
	adm := kadm.NewClient(newClient(t))
	name := topicName(t)
	cfgs := map[string]*string{
		"retention.ms":      kadm.StringPtr("3600000"),
		"retention.bytes":   kadm.StringPtr("-1"),
		"max.message.bytes": kadm.StringPtr("2048"),
		"cleanup.policy":    kadm.StringPtr("delete"),
	}
	res, err := adm.CreateTopic(ctx, 3, -1, cfgs, name)
	if err != nil {
		t.Fatalf("create: %v (%s)", err, res.ErrMessage)
	}
	md, err := adm.Metadata(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Topics[name].Partitions); n != 3 {
		t.Fatalf("%d partitions, want 3", n)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(name, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe: %v %v", err, rc.Err)
	}
	want := map[string]string{"retention.ms": "3600000", "retention.bytes": "-1", "max.message.bytes": "2048", "cleanup.policy": "delete"}
	for _, c := range rc.Configs {
		if w, ok := want[c.Key]; ok {
			if c.Value == nil || *c.Value != w {
				t.Errorf("%s = %v, want %s", c.Key, c.Value, w)
			}
			delete(want, c.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("configs missing: %v", want)
	}

	if _, err := adm.CreateTopic(ctx, 1, -1, nil, name); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Errorf("create again: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	for _, bad := range []map[string]*string{
		{"cleanup.policy": kadm.StringPtr("compact")},
		{"cleanup.policy": kadm.StringPtr("compact,delete")},
		{"segment.bytes": kadm.StringPtr("1000")},
		{"retention.ms": kadm.StringPtr("0")},
		{"retention.ms": kadm.StringPtr("soon")},
		{"max.message.bytes": kadm.StringPtr("10")}, // under the broker's bound
	} {
		res, err := adm.CreateTopic(ctx, 1, -1, bad, topicName(t))
		if !errors.Is(err, kerr.InvalidConfig) {
			t.Errorf("configs %v: %v (%s), want INVALID_CONFIG", cfgString(bad), err, res.ErrMessage)
		}
	}

	vname := topicName(t)
	if _, err := adm.ValidateCreateTopics(ctx, 1, -1, nil, vname); err != nil {
		t.Fatal(err)
	}
	vres, err := adm.ValidateCreateTopics(ctx, 1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, vname)
	if err != nil || !errors.Is(vres[vname].Err, kerr.InvalidConfig) {
		t.Errorf("validate compact: %v %v, want INVALID_CONFIG", err, vres[vname].Err)
	}
	md, err = adm.Metadata(ctx, vname)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(md.Topics[vname].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("validate-only created the topic: %v", md.Topics[vname].Err)
	}
}

func cfgString(m map[string]*string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+*v)
	}
	return strings.Join(parts, ",")
}

// TestCreateTopicsRaw: error codes of requests kadm does not send.
func TestCreateTopicsRaw(t *testing.T) {
	cl := newClient(t)
	dup := topicName(t)
	topic := func(name string, parts int32, rf int16) kmsg.CreateTopicsRequestTopic {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, parts, rf
		return rt
	}
	assigned := topic(topicName(t), -1, -1)
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Replicas = []int32{1}
	assigned.ReplicaAssignment = append(assigned.ReplicaAssignment, ra)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Topics = []kmsg.CreateTopicsRequestTopic{
		topic(dup, 1, -1), topic(dup, 1, -1),
		topic(topicName(t), 0, -1),
		topic(topicName(t), 1, 0),
		topic(topicName(t), 1, 7),
		assigned,
		topic("bad/name", 1, -1),
	}
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	want := []error{kerr.InvalidRequest, kerr.InvalidRequest, kerr.InvalidPartitions, kerr.InvalidReplicationFactor,
		kerr.InvalidReplicationFactor, kerr.InvalidReplicaAssignment, kerr.InvalidTopicException}
	if len(resp.Topics) != len(want) {
		t.Fatalf("%d topics answered, want %d", len(resp.Topics), len(want))
	}
	for i, st := range resp.Topics {
		if err := kerr.ErrorForCode(st.ErrorCode); !errors.Is(err, want[i]) {
			t.Errorf("topic %d %q: %v, want %v", i, st.Topic, err, want[i])
		}
		if st.ErrorMessage == nil || *st.ErrorMessage == "" {
			t.Errorf("topic %d %q: no error message", i, st.Topic)
		}
	}
}
