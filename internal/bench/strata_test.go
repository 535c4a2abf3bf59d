package bench

import (
	"strings"
	"testing"

	"github.com/stratalog/strata/api/client"
)

func TestPartitionsReady(t *testing.T) {
	three := []string{"n1", "n2", "n3"}
	for _, tc := range []struct {
		name string
		in   []client.PartitionInfo
		want string // substring of the error; empty for ready
	}{
		{"not described yet", nil, "no partitions"},
		{"no leader", []client.PartitionInfo{{Replicas: three, InSync: three}}, "no leader"},
		{"replica behind", []client.PartitionInfo{{LeaderAddr: "a", Replicas: three, InSync: three[:2]}}, "2 of 3"},
		{"second partition", []client.PartitionInfo{{LeaderAddr: "a", Replicas: three, InSync: three},
			{Partition: 1, Replicas: three, InSync: three}}, "partition 1 has no leader"},
		{"ready", []client.PartitionInfo{{LeaderAddr: "a", Replicas: three, InSync: three}}, ""},
		{"one node", []client.PartitionInfo{{LeaderAddr: "a", Replicas: three[:1], InSync: three[:1]}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := partitionsReady(client.TopicInfo{Partitions: tc.in})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("not ready: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
