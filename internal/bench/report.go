package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one workload run.
type Result struct {
	// Workload and Target label the run.
	Workload string
	Target   string
	// Records and Bytes (payload: values only) were acknowledged or
	// consumed in Elapsed.
	Records int64
	Bytes   int64
	Elapsed time.Duration
	// Latency holds one value per record; nil when the workload does not
	// measure latency (consume).
	Latency *Histogram
}

// RecordsPerSec returns the throughput in records per second.
func (r *Result) RecordsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Records) / r.Elapsed.Seconds()
}

// MBPerSec returns the payload throughput in 10^6 bytes per second.
func (r *Result) MBPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// Latency is a set of latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Summary is a Result as numbers: the object `--output json` prints.
type Summary struct {
	Workload      string   `json:"workload"`
	Target        string   `json:"target"`
	Records       int64    `json:"records"`
	Bytes         int64    `json:"bytes"`
	ElapsedSec    float64  `json:"elapsed_sec"`
	RecordsPerSec float64  `json:"records_per_sec"`
	MBPerSec      float64  `json:"mb_per_sec"`
	LatencyMs     *Latency `json:"latency_ms"` // null when not measured
}

// Summary returns the result's figures.
func (r *Result) Summary() Summary {
	s := Summary{Workload: r.Workload, Target: r.Target, Records: r.Records, Bytes: r.Bytes,
		ElapsedSec: r.Elapsed.Seconds(), RecordsPerSec: r.RecordsPerSec(), MBPerSec: r.MBPerSec()}
	if h := r.Latency; h != nil && h.Count() > 0 {
		s.LatencyMs = &Latency{P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)),
			P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteJSON writes the summary as one JSON object.
func (s Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteTable writes the summary as a small table for people.
func (s Summary) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\t%s (%s)\n", s.Workload, s.Target)
	fmt.Fprintf(tw, "records\t%d in %.2fs\n", s.Records, s.ElapsedSec)
	fmt.Fprintf(tw, "throughput\t%s records/s, %.1f MB/s\n", Count(s.RecordsPerSec), s.MBPerSec)
	if l := s.LatencyMs; l != nil {
		fmt.Fprintf(tw, "latency ms\tp50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
			Millis(l.P50), Millis(l.P90), Millis(l.P99), Millis(l.P999), Millis(l.Max))
	} else {
		fmt.Fprintf(tw, "latency\tnot measured by this workload\n")
	}
	return tw.Flush()
}

// Count formats a rate with thousands separators (1,234,567).
func Count(v float64) string {
	n := int64(v + 0.5)
	s := fmt.Sprint(n)
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Millis formats milliseconds with 3 significant digits.
func Millis(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
