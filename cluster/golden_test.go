package cluster

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/topic"
)

// The replicated state machines keep their commands in raft's log and
// their state in snapshots, written by one version and read by the next:
// the golden files in testdata/golden were written by an earlier version,
// and the tests below check that today's code encodes the same values to
// the same bytes and decodes those bytes to the same values. Regenerate
// them (go test -run Golden -update-golden) only for a deliberate change
// of the format, never to make a rename pass.
var updateGolden = flag.Bool("update-golden", false, "rewrite cluster/testdata/golden")

const goldenDir = "testdata/golden"

// goldenTopic, goldenOffsets and goldenUser are the values the golden
// commands carry.
func goldenTopic() topic.Topic {
	return topic.Topic{Name: "orders", Config: topic.Config{Partitions: 2, ReplicationFactor: 3, RetentionMs: 86_400_000,
		RetentionBytes: 1 << 30, MaxBatchBytes: 1 << 20}}
}

func goldenOffsets() []topic.PartitionOffset {
	return []topic.PartitionOffset{{Topic: "orders", Partition: 0, Offset: 42}, {Topic: "orders", Partition: 1, Offset: 7}}
}

func goldenUser() auth.User {
	return auth.User{Name: "alice", Credentials: []auth.Credential{{Mechanism: auth.ScramSHA256, Salt: []byte("salt-0123456789"),
		Iterations: 4096, StoredKey: bytes.Repeat([]byte{1}, 32), ServerKey: bytes.Repeat([]byte{2}, 32)}}}
}

// goldenCommands are the metadata commands of the golden log, encoded by
// today's code, by name. "put_queue" is not among them: its line is only
// applied (the queue definition belongs to package queue's tests).
func goldenCommands() []struct {
	name string
	cmd  []byte
} {
	t := goldenTopic()
	t.Partitions = []topic.Assignment{{DataGroup: 1, Replicas: []string{"n1", "n2", "n3"}}, {DataGroup: 2, Replicas: []string{"n2", "n3", "n1"}}}
	return []struct {
		name string
		cmd  []byte
	}{
		{"register_node", RegisterNodeCmd(NodeInfo{ID: "n1", GRPCAddr: "10.0.0.1:7400", ClusterAddr: "10.0.0.1:7401",
			GossipAddr: "10.0.0.1:7402", KafkaAddr: "10.0.0.1:9092", Features: FeatureSecurity})},
		{"set_data_groups", SetDataGroupsCmd([]DataGroupInfo{{ID: 1, Voters: []string{"n1", "n2", "n3"}, Initial: []string{"n1"}, Preferred: "n1"},
			{ID: 2, Voters: []string{"n2", "n3", "n1"}}})},
		{"create_topic", CreateTopicCmd(t)},
		{"alloc_producer_id", AllocProducerIDCmd()},
		{"commit_offsets", CommitOffsetsCmd("billing", goldenOffsets(), false)},
		{"put_user", PutUserCmd(goldenUser(), UserCreate)},
		{"add_acl", AddACLCmd(auth.ACL{Principal: "user:alice", Permission: auth.PermissionAllow, Operation: auth.OpProduce,
			Resource: auth.ResourceTopic, Name: "orders"})},
	}
}

// goldenQueueLine is the put_queue command of the golden log, as the
// version that wrote the file encoded it: a literal, so that package
// queue's types can change name without touching this test.
const goldenQueueLine = `{"op":"put_queue","queue":{"name":"workers","topic":"orders","topic_id":0,` +
	`"settings":{"ack_timeout_ms":30000,"max_deliveries":5,"backoff_initial_ms":0,"backoff_max_ms":0,"max_leased":0,` +
	`"dead_letter_topic":"","ordering":""},"producer_id_base":0}}`

// readGolden returns a golden file, or writes want there with -update-golden.
func readGolden(t *testing.T, name string, want []byte) []byte {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *updateGolden {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoldenMetaCommands: today's code encodes each command of the golden
// log to the bytes an earlier version wrote.
func TestGoldenMetaCommands(t *testing.T) {
	var lines []string
	for _, c := range goldenCommands() {
		lines = append(lines, string(c.cmd))
	}
	golden := strings.Split(strings.TrimSpace(string(readGolden(t, "meta_commands.jsonl",
		[]byte(strings.Join(append(lines, goldenQueueLine), "\n")+"\n")))), "\n")
	for i, c := range goldenCommands() {
		if i >= len(golden) || golden[i] != string(c.cmd) {
			t.Errorf("%s encodes as\n%s\nthe golden log has\n%s", c.name, c.cmd, golden[min(i, len(golden)-1)])
		}
	}
}

// TestGoldenMetaSnapshot: the golden log, applied by today's code, makes
// the snapshot an earlier version made of it, byte for byte; and that
// snapshot, restored, holds the values the commands carried.
func TestGoldenMetaSnapshot(t *testing.T) {
	cmds, err := os.ReadFile(filepath.Join(goldenDir, "meta_commands.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	f := NewMetaFSM(nil)
	for i, line := range strings.Split(strings.TrimSpace(string(cmds)), "\n") {
		if res, isErr := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: []byte(line)}).(error); isErr {
			t.Fatalf("golden command %d: %v", i+1, res)
		}
	}
	snap := metaSnapshotBytes(t, f)
	golden := readGolden(t, "meta_snapshot.json", snap)
	if !bytes.Equal(snap, golden) {
		t.Fatalf("the golden log makes the snapshot\n%s\nthe golden snapshot is\n%s", snap, golden)
	}

	g := NewMetaFSM(nil)
	if err := g.Restore(readCloser{bytes.NewReader(golden)}); err != nil {
		t.Fatal(err)
	}
	want := goldenTopic()
	got, ok := g.Topic("orders")
	if !ok || got.Name != want.Name || got.Config != want.Config || got.ID == 0 || len(got.Partitions) != 2 ||
		got.Partitions[1].DataGroup != 2 || !reflect.DeepEqual(got.Partitions[1].Replicas, []string{"n2", "n3", "n1"}) {
		t.Errorf("restored topic %+v, want %+v with 2 partitions", got, want)
	}
	if u, ok := g.User("alice"); !ok || !reflect.DeepEqual(u, goldenUser()) {
		t.Errorf("restored user %+v, want %+v", u, goldenUser())
	}
	for _, o := range goldenOffsets() {
		if off := g.CommittedOffset("billing", o.Topic, o.Partition); off != o.Offset {
			t.Errorf("restored offset of %s/%d: %d, want %d", o.Topic, o.Partition, off, o.Offset)
		}
	}
	if n, ok := g.NodeInfo("n1"); !ok || n.KafkaAddr != "10.0.0.1:9092" {
		t.Errorf("restored node %+v", n)
	}
	if _, ok := g.QueueDef("orders", "workers"); !ok {
		t.Error("restored queue group missing")
	}
	if again := metaSnapshotBytes(t, g); !bytes.Equal(again, golden) {
		t.Errorf("the restored golden snapshot snapshots as\n%s", again)
	}
}

// TestGoldenDataCommands: a data group's create-partition command and a
// partition's entry in a snapshot manifest keep their bytes.
func TestGoldenDataCommands(t *testing.T) {
	cfg := goldenTopic().Config
	cmd := CreatePartitionCmd("orders", PartKey{TopicID: 3, Partition: 1}, cfg)
	entry, err := json.Marshal(manifestEntry{Key: PartKey{TopicID: 3, Partition: 1}, Topic: "orders", Config: cfg,
		StartOffset: 10, HighWatermark: 20, Producers: map[int64]*producerState{}})
	if err != nil {
		t.Fatal(err)
	}
	now := append(append(cmd, '\n'), append(entry, '\n')...)
	golden := readGolden(t, "data_commands.bin", now)
	if !bytes.Equal(now, golden) {
		t.Fatalf("data commands encode as\n%q\nthe golden ones are\n%q", now, golden)
	}
	var pc partitionCmd
	if err := json.Unmarshal(golden[1:bytes.IndexByte(golden, '\n')], &pc); err != nil || pc.Config != cfg || pc.Topic != "orders" {
		t.Errorf("golden create-partition command decodes as %+v, %v", pc, err)
	}
}

func metaSnapshotBytes(t *testing.T, f *MetaFSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink metaSnapSink
	if err := s.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return append(sink.Bytes(), '\n')
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
