package topic

// The types below are inside the metadata group's commands and snapshots
// and the data groups' commands and snapshot manifests (package cluster),
// encoded as JSON: their JSON names are a format that replicas of
// different versions share and must not change (cluster's golden tests
// check them).

// Config is a topic's configuration as the metadata group stores it.
type Config struct {
	Partitions        int32 `json:"partitions"`
	ReplicationFactor int32 `json:"replication_factor"`
	RetentionMs       int64 `json:"retention_ms"`    // 0: keep forever
	RetentionBytes    int64 `json:"retention_bytes"` // per partition; 0: no limit
	MaxBatchBytes     int32 `json:"max_batch_bytes"`
}

// Assignment places one partition: the data group that holds it and the
// nodes that replicate it.
type Assignment struct {
	DataGroup uint32   `json:"data_group"`
	Replicas  []string `json:"replicas"`
}

// Topic is a topic as the metadata group stores it. ID is unique for the
// life of the cluster, so a topic deleted and created again under the same
// name never shares partitions or offsets with its predecessor.
type Topic struct {
	Name       string       `json:"name"`
	ID         uint64       `json:"id"`
	Config     Config       `json:"config"`
	Partitions []Assignment `json:"partitions"`
}

// PartitionOffset is one partition's offset in a commit or reset of a
// consumer group.
type PartitionOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}
