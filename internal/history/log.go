package history

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// LinearizabilityTimeout bounds porcupine's search per check; a search that
// runs out is reported as a violation ("inconclusive"), never as a pass.
var LinearizabilityTimeout = 60 * time.Second

type position struct {
	partition int32
	offset    int64
}

// CheckLog checks produces and reads against final, the whole content of
// every partition from offset 0 (values in offset order) read after the
// workload stopped and the cluster healed. See the package documentation.
func CheckLog(final map[int32][]string, produces []Produce, reads []Read) Result {
	var res Result
	where := map[string][]position{}
	for p, vals := range final {
		for off, v := range vals {
			where[v] = append(where[v], position{p, int64(off)})
		}
	}
	produced := map[string]bool{}
	ops := map[int32][]porcupine.Operation{}
	for i := range produces {
		pr := &produces[i]
		produced[pr.Value] = true
		at := where[pr.Value]
		if len(at) > 1 {
			res.Counts.Duplicated++
			res.violate("record %q is in the log %d times: %v", pr.Value, len(at), at)
		}
		switch pr.Outcome {
		case OK:
			res.Counts.Acknowledged++
			switch {
			case len(at) == 0:
				res.Counts.Lost++
				res.violate("record %q acknowledged at %d/%d is not in the log", pr.Value, pr.Partition, pr.Offset)
			case at[0] != (position{pr.Partition, pr.Offset}):
				res.violate("record %q acknowledged at %d/%d is at %d/%d", pr.Value, pr.Partition, pr.Offset, at[0].partition, at[0].offset)
			}
			ops[pr.Partition] = append(ops[pr.Partition], produceOp(pr, pr.Offset, pr.Return))
		case Failed:
			res.Counts.Failed++
			if len(at) > 0 {
				res.violate("record %q whose produce failed (%s) is in the log at %d/%d", pr.Value, pr.Err, at[0].partition, at[0].offset)
			}
		case Unknown:
			res.Counts.Unknown++
			if len(at) > 0 {
				res.Counts.UnknownWritten++
				// Written: it took effect some time after its call.
				ops[at[0].partition] = append(ops[at[0].partition], produceOp(pr, at[0].offset, math.MaxInt64))
			}
		}
	}
	for v, at := range where {
		if !produced[v] {
			res.Counts.Unexpected++
			res.violate("record %q at %d/%d was never produced", v, at[0].partition, at[0].offset)
		}
	}
	for i := range reads {
		rd := &reads[i]
		res.Counts.Reads++
		if rd.OutOfRange {
			res.Counts.OutOfRange++
		}
		checkReadValues(&res, rd, final[rd.Partition])
		ops[rd.Partition] = append(ops[rd.Partition], porcupine.Operation{
			ClientId: rd.Client, Call: rd.Call, Return: rd.Return,
			Input:  logInput{read: true, from: rd.From},
			Output: logOutput{outOfRange: rd.OutOfRange, upTo: rd.From + int64(len(rd.Values)), hw: rd.HighWatermark},
		})
	}
	parts := make([]int32, 0, len(ops))
	for p := range ops {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		switch porcupine.CheckOperationsTimeout(logModel, ops[p], LinearizabilityTimeout) {
		case porcupine.Ok:
		case porcupine.Illegal:
			res.violate("partition %d: the history is not linearizable (%d operations)%s", p, len(ops[p]), explainIllegal(ops[p]))
		default:
			res.violate("partition %d: linearizability check inconclusive after %v (%d operations)", p, LinearizabilityTimeout, len(ops[p]))
		}
	}
	return res
}

// checkReadValues compares what a read returned with the final log: a
// read that saw a record the log does not hold at that offset read
// something that was later lost or replaced.
func checkReadValues(res *Result, rd *Read, final []string) {
	for i, v := range rd.Values {
		off := rd.From + int64(i)
		if off >= int64(len(final)) || final[off] != v {
			got := "nothing"
			if off < int64(len(final)) {
				got = fmt.Sprintf("%q", final[off])
			}
			res.violate("a read of %d/%d saw %q; the log holds %s there", rd.Partition, off, v, got)
			return
		}
	}
}

func produceOp(pr *Produce, off, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: pr.Client, Call: pr.Call, Return: ret,
		Input: logInput{value: pr.Value}, Output: logOutput{offset: off}}
}

type logInput struct {
	read  bool
	from  int64
	value string
}

type logOutput struct {
	offset     int64 // produce
	outOfRange bool  // read
	upTo       int64 // read: From + records returned
	hw         int64 // read
}

// logModel's state is the committed length of one partition's log.
var logModel = porcupine.Model{
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		n, in, out := state.(int64), input.(logInput), output.(logOutput)
		if !in.read {
			return out.offset == n, n + 1
		}
		if out.outOfRange {
			return in.from > n, n
		}
		return out.upTo <= n && out.hw <= n, n
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(logInput), output.(logOutput)
		switch {
		case !in.read:
			return fmt.Sprintf("produce(%s) -> %d", in.value, out.offset)
		case out.outOfRange:
			return fmt.Sprintf("read(%d) -> out of range", in.from)
		}
		return fmt.Sprintf("read(%d) -> up to %d, hw %d", in.from, out.upTo, out.hw)
	},
}

// explainIllegal names the first read answered out of range although an
// acknowledged produce had returned an offset at or past it before the
// read began: the commonest cause, and the one a reader can act on.
func explainIllegal(ops []porcupine.Operation) string {
	for _, r := range ops {
		in, out := r.Input.(logInput), r.Output.(logOutput)
		if !in.read {
			continue
		}
		for _, w := range ops {
			win, wout := w.Input.(logInput), w.Output.(logOutput)
			if win.read || w.Return >= r.Call {
				continue
			}
			if out.outOfRange && wout.offset >= in.from {
				return fmt.Sprintf(": read(%d) answered out of range although %s had returned before it began", in.from, logModel.DescribeOperation(win, wout))
			}
		}
	}
	return ""
}
