package kafka_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/agent"
)

// lockedBuffer is a log sink for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSlowRequestLogged: with --slow-request below every request's time, a
// Metadata request is logged with its API and peer; a Fetch, which waits
// by design (a long poll), is not.
func TestSlowRequestLogged(t *testing.T) {
	var logs lockedBuffer
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.MetadataVoters = t.TempDir(), "slow", 1
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "", "127.0.0.1:0", ""
	cfg.KafkaAddr, cfg.KafkaAutoCreateTopics = "127.0.0.1:0", true
	cfg.MinFreeDiskBytes = -1
	cfg.SlowRequest = time.Nanosecond
	a, err := agent.New(ctxT(t), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	topic := "slowlog"
	meta := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = &topic
	meta.Topics = append(meta.Topics, rt)
	if _, err := meta.RequestWith(ctxT(t), cl); err != nil {
		t.Fatal(err)
	}
	fetchRaw(t, cl, 11, 50, 1<<20, map[string][]fetchAt{topic: {{partition: 0, offset: 0}}})
	out := logs.String()
	slow := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `msg="slow request"`) && strings.Contains(l, "peer=127.0.0.1:") {
			for _, f := range strings.Fields(l) {
				if api, ok := strings.CutPrefix(f, "api="); ok {
					slow[api] = true
				}
			}
		}
	}
	if !slow["Metadata"] {
		t.Fatalf("no slow-request line for Metadata:\n%s", out)
	}
	if slow["Fetch"] {
		t.Fatalf("a Fetch (a long poll) was logged as slow:\n%s", out)
	}
}
