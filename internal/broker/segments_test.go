package broker

import (
	"testing"
	"time"

	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// TestSegmentConfigs: a partition's segment log takes the topic's
// retention and largest batch (never below the segment default), the
// node's segment size with an index that fits it, and no fsync of its own.
func TestSegmentConfigs(t *testing.T) {
	seg := SegmentConfigs(64<<20, nil)
	def := segment.DefaultConfig()
	cases := []struct {
		tc       topic.Config
		maxBatch int
	}{
		{topic.Config{RetentionMs: 90_000, RetentionBytes: 5 << 20, MaxBatchBytes: int32(def.MaxBatchBytes) * 2}, def.MaxBatchBytes * 2},
		{topic.Config{MaxBatchBytes: 1024}, def.MaxBatchBytes},
	}
	for _, c := range cases {
		sc := seg(c.tc)
		if sc.MaxSegmentBytes != 64<<20 || sc.MaxIndexBytes != sc.FittedIndexBytes() || sc.Fsync != segment.FsyncNever ||
			sc.RetentionAge != time.Duration(c.tc.RetentionMs)*time.Millisecond || sc.RetentionBytes != c.tc.RetentionBytes ||
			sc.MaxBatchBytes != c.maxBatch {
			t.Errorf("topic %+v: segment config %+v", c.tc, sc)
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("topic %+v: %v", c.tc, err)
		}
	}
}
