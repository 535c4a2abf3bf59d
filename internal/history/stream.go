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
// have reached hw[partition] (it read everything acknowledged).
func (r *Recorder) CheckStream(start, hw map[int32]int64) StreamResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out StreamResult
	var res Result
	names := make([]string, 0, len(r.streams))
	for n := range r.streams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
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
