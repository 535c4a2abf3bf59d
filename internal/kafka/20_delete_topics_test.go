package kafka_test

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestDeleteTopicsKadm: kadm deletes a topic, which is then unknown; an
// unknown topic is UNKNOWN_TOPIC_OR_PARTITION.
func TestDeleteTopicsKadm(t *testing.T) {
	topic := createTopic(t, 2, nil)
	ctx := ctxT(t)
	adm := kadm.NewClient(newClient(t))
	res, err := adm.DeleteTopics(ctx, topic, "no-such-topic")
	if err != nil {
		t.Fatal(err)
	}
	if err := res[topic].Err; err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := res["no-such-topic"].Err; !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete unknown: %v", err)
	}
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(md.Topics[topic].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("deleted topic in metadata: %v", md.Topics[topic].Err)
	}
	// The name can be used again.
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatalf("create again: %v", err)
	}
}
