package history

import "sort"

// StreamResult is the outcome of CheckStream.
type StreamResult struct {
	Received   int
	Violations []string
}

// OK reports whether the check found no violation.
func (r *StreamResult) OK() bool { return len(r.Violations) == 0 }

// CheckStream checks what each stream consumer received (Recorder.Streamed):
// per partition, the first offset is start[partition] (where the consumer
// was told to begin) and each next offset is one more than the last: an
// offset skipped means a record the consumer never saw, an offset that
// goes back means a replay the consumer did not ask for (a reset to the
// earliest offset after a failover). With hw given, a consumer must also
// have reached hw[partition] (it read everything acknowledged). Only the
// consumers named are checked.
func (r *Recorder) CheckStream(start, hw map[int32]int64, consumers ...string) StreamResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out StreamResult
	var res Result
	sort.Strings(consumers)
	for _, name := range consumers {
		for p, offs := range r.streams[name] {
			out.Received += len(offs)
			next := start[p]
			for _, o := range offs {
				switch {
				case o > next:
					res.violate("consumer %s, partition %d: offset %d follows %d (skipped %d records)", name, p, o, next-1, o-next)
				case o < next:
					res.violate("consumer %s, partition %d: offset %d after %d (went back %d records)", name, p, o, next-1, next-o)
				}
				next = o + 1
			}
			if want, ok := hw[p]; ok && next < want {
				res.violate("consumer %s, partition %d: stopped at %d, the log ends at %d", name, p, next, want)
			}
		}
	}
	out.Violations = res.Violations
	return out
}

// StreamPosition returns one past the last offset consumer received of
// partition, 0 when none.
func (r *Recorder) StreamPosition(consumer string, partition int32) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	offs := r.streams[consumer][partition]
	if len(offs) == 0 {
		return 0
	}
	return offs[len(offs)-1] + 1
}

// StreamCoverage checks, for consumers that share partitions (the members
// of a stream group, which may receive a record again after a rebalance),
// that together they received every offset in [0, hw[partition]).
func (r *Recorder) StreamCoverage(hw map[int32]int64, consumers ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var res Result
	for p, end := range hw {
		seen := make([]bool, end)
		for _, c := range consumers {
			for _, o := range r.streams[c][p] {
				if o >= 0 && o < end {
					seen[o] = true
				}
			}
		}
		for o, ok := range seen {
			if !ok {
				res.violate("partition %d: no consumer of %v received offset %d (of %d)", p, consumers, o, end)
				break
			}
		}
	}
	return res.Violations
}
