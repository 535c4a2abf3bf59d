package main

import (
	"context"
	"fmt"
	"os"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// groupCommands are the subcommands of `strata group`.
var groupCommands = map[string]command{
	"list":     groupList,
	"describe": groupDescribe,
	"reset":    groupReset,
}

func runGroup(ctx context.Context, args []string) error {
	return dispatch(ctx, args, groupCommands, "usage: strata group list|describe|reset ...\n",
		unknownSub("group", "list, describe, reset"))
}

func groupList(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("group list")
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.ListGroups(rctx, &stratav1.ListGroupsRequest{})
		if err != nil {
			return rpcErr(err)
		}
		if cf.output == "json" {
			out := []map[string]any{}
			for _, g := range resp.Groups {
				out = append(out, map[string]any{"group": g.Group, "state": g.State, "members": g.Members})
			}
			return printJSON(out)
		}
		tw := newTable()
		fmt.Fprintln(tw, "GROUP\tSTATE\tMEMBERS")
		for _, g := range resp.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", g.Group, g.State, g.Members)
		}
		return tw.Flush()
	})
}

func groupDescribe(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("group describe")
	name, err := parseName(fs, args, "usage: strata group describe GROUP")
	if err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.DescribeGroup(rctx, &stratav1.DescribeGroupRequest{Group: name})
		if err != nil {
			return rpcErr(err)
		}
		return printGroup(resp, cf.output)
	})
}

// printGroup prints a group's description: its members' count and, per
// partition, its lag, or "unknown" when the node asked could not reach
// the partition's leader.
func printGroup(resp *stratav1.DescribeGroupResponse, output string) error {
	if output == "json" {
		return printJSON(groupJSON(resp))
	}
	fmt.Printf("group %s: %s, %d members, generation %d\n\n", resp.Group, resp.State, len(resp.Members), resp.Generation)
	tw := newTable()
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tLAG-TIME\tMEMBER")
	unknown := 0
	for _, p := range resp.Partitions {
		committed := fmt.Sprint(p.CommittedOffset)
		if p.CommittedOffset < 0 {
			committed = "-"
		}
		end, lag := fmt.Sprint(p.EndOffset), fmt.Sprint(p.LagRecords)
		lagTime := (time.Duration(p.LagSeconds * float64(time.Second))).Round(time.Millisecond).String()
		if p.Unknown {
			end, lag, lagTime = "unknown", "unknown", "unknown"
			unknown++
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, committed, end, lag, lagTime, p.MemberId)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if unknown > 0 {
		fmt.Printf("\n%s\n", unknownNote(unknown))
	}
	return nil
}

const groupResetUsage = "usage: strata group reset GROUP --topic TOPIC (--to-earliest | --to-latest | --to-offset N | --to-time RFC3339)"

func groupReset(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("group reset")
	topic := fs.String("topic", "", "topic whose offsets to reset (required)")
	toEarliest := fs.Bool("to-earliest", false, "reset to the first retained offset")
	toLatest := fs.Bool("to-latest", false, "reset to the end of the log")
	toOffset := fs.Int64("to-offset", -1, "reset to this offset")
	toTime := fs.String("to-time", "", "reset to the first record at or after this RFC3339 time")
	name, err := parseName(fs, args, groupResetUsage)
	if err != nil {
		return err
	}
	if *topic == "" {
		fmt.Fprintln(os.Stderr, groupResetUsage)
		return exitError{2}
	}
	req := &stratav1.ResetOffsetsRequest{Group: name, Topic: *topic}
	n := 0
	if *toEarliest {
		req.Spec, n = stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST, n+1
	}
	if *toLatest {
		req.Spec, n = stratav1.OffsetSpec_OFFSET_SPEC_LATEST, n+1
	}
	if *toOffset >= 0 {
		req.Spec, req.Offset, n = stratav1.OffsetSpec_OFFSET_SPEC_OFFSET, *toOffset, n+1
	}
	if *toTime != "" {
		t, err := time.Parse(time.RFC3339Nano, *toTime)
		if err != nil {
			return fmt.Errorf("--to-time: %w", err)
		}
		req.Spec, req.TimestampMs, n = stratav1.OffsetSpec_OFFSET_SPEC_TIMESTAMP, t.UnixMilli(), n+1
	}
	if n != 1 {
		return fmt.Errorf("give exactly one of --to-earliest, --to-latest, --to-offset, --to-time")
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.ResetOffsets(rctx, req)
		if err != nil {
			return rpcErr(err)
		}
		return printNewOffsets(cf.output, resp.Offsets)
	})
}

// printNewOffsets prints the offsets a reset moved the group to.
func printNewOffsets(output string, offsets []*stratav1.PartitionOffset) error {
	if output == "json" {
		out := []map[string]any{}
		for _, o := range offsets {
			out = append(out, map[string]any{"topic": o.Topic, "partition": o.Partition, "offset": o.Offset})
		}
		return printJSON(out)
	}
	tw := newTable()
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tNEW-OFFSET")
	for _, o := range offsets {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", o.Topic, o.Partition, o.Offset)
	}
	return tw.Flush()
}

func groupJSON(g *stratav1.DescribeGroupResponse) map[string]any {
	members := []map[string]any{}
	for _, m := range g.Members {
		var as []string
		for _, a := range m.Assignments {
			as = append(as, fmt.Sprintf("%s/%d", a.Topic, a.Partition))
		}
		members = append(members, map[string]any{"member_id": m.MemberId, "client_id": m.ClientId, "assignments": as})
	}
	parts := []map[string]any{}
	for _, p := range g.Partitions {
		parts = append(parts, map[string]any{"topic": p.Topic, "partition": p.Partition, "committed_offset": p.CommittedOffset,
			"end_offset": p.EndOffset, "lag_records": p.LagRecords, "lag_seconds": p.LagSeconds, "member_id": p.MemberId,
			"unknown": p.Unknown})
	}
	return map[string]any{"group": g.Group, "state": g.State, "generation": g.Generation, "members": members, "partitions": parts}
}

// unknownNote explains the partitions a describe marks unknown.
func unknownNote(n int) string {
	return fmt.Sprintf("%d partition(s) unknown: their leader did not answer the node asked (or none is known)", n)
}
