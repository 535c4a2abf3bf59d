package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// topicCommands are the subcommands of `strata topic`.
var topicCommands = map[string]command{
	"create":   topicCreate,
	"list":     topicList,
	"describe": topicDescribe,
	"delete":   topicDelete,
}

func runTopic(ctx context.Context, args []string) error {
	return dispatch(ctx, args, topicCommands, "usage: strata topic create|list|describe|delete ...\n",
		unknownSub("topic", "create, list, describe, delete"))
}

func topicCreate(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("topic create")
	partitions := fs.Int("partitions", 1, "number of partitions")
	rf := fs.Int("replication-factor", 0, "replicas per partition (default min(3, nodes))")
	retention := fs.Duration("retention", 0, "delete records older than this (0: keep forever), e.g. 168h")
	retentionBytes := fs.Int64("retention-bytes", 0, "keep at most this many bytes per partition (0: no limit)")
	maxBatch := fs.Int("max-batch-bytes", 0, "largest batch accepted (default 1 MiB)")
	name, err := parseName(fs, args, "usage: strata topic create NAME")
	if err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.CreateTopic(rctx, &stratav1.CreateTopicRequest{Name: name, Config: &stratav1.TopicConfig{
			Partitions: int32(*partitions), ReplicationFactor: int32(*rf), RetentionMs: retention.Milliseconds(),
			RetentionBytes: *retentionBytes, MaxBatchBytes: int32(*maxBatch)}})
		if err != nil {
			return rpcErr(err)
		}
		if cf.output == "json" {
			return printJSON(topicJSON(resp.Topic))
		}
		n := len(resp.Topic.Partitions)
		fmt.Printf("created topic %s with %d partition%s\n", name, n, map[bool]string{true: "s"}[n != 1])
		return nil
	})
}

func topicList(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("topic list")
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.ListTopics(rctx, &stratav1.ListTopicsRequest{})
		if err != nil {
			return rpcErr(err)
		}
		if cf.output == "json" {
			out := []any{}
			for _, t := range resp.Topics {
				out = append(out, topicJSON(t))
			}
			return printJSON(out)
		}
		tw := newTable()
		fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tRETENTION\tRECORDS\tSIZE")
		for _, t := range resp.Topics {
			var recs, size int64
			for _, p := range t.Partitions {
				recs += p.HighWatermark - p.LogStartOffset
				size += p.SizeBytes
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\n", t.Name, len(t.Partitions), t.Config.ReplicationFactor,
				retentionText(t.Config), recs, bytesText(size))
		}
		return tw.Flush()
	})
}

func topicDescribe(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("topic describe")
	name, err := parseName(fs, args, "usage: strata topic describe NAME")
	if err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.DescribeTopic(rctx, &stratav1.DescribeTopicRequest{Name: name})
		if err != nil {
			return rpcErr(err)
		}
		t := resp.Topic
		if cf.output == "json" {
			return printJSON(topicJSON(t))
		}
		fmt.Printf("topic %s: %d partitions, replication factor %d, retention %s, max batch %s\n\n", t.Name,
			len(t.Partitions), t.Config.ReplicationFactor, retentionText(t.Config), bytesText(int64(t.Config.MaxBatchBytes)))
		tw := newTable()
		fmt.Fprintln(tw, "PARTITION\tLEADER\tREPLICAS\tIN-SYNC\tSTART\tEND\tSIZE\tRAFT-GROUP")
		for _, p := range t.Partitions {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%d\n", p.Partition, p.LeaderId, strings.Join(p.Replicas, ","),
				strings.Join(p.InSync, ","), p.LogStartOffset, p.HighWatermark, bytesText(p.SizeBytes), p.RaftGroup)
		}
		return tw.Flush()
	})
}

func topicDelete(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("topic delete")
	name, err := parseName(fs, args, "usage: strata topic delete NAME")
	if err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		if _, err := cl.DeleteTopic(rctx, &stratav1.DeleteTopicRequest{Name: name}); err != nil {
			return rpcErr(err)
		}
		fmt.Printf("deleted topic %s\n", name)
		return nil
	})
}

func topicJSON(t *stratav1.TopicInfo) map[string]any {
	parts := []map[string]any{}
	for _, p := range t.Partitions {
		parts = append(parts, map[string]any{
			"partition": p.Partition, "leader": p.LeaderId, "replicas": p.Replicas, "in_sync": p.InSync,
			"log_start_offset": p.LogStartOffset, "high_watermark": p.HighWatermark, "size_bytes": p.SizeBytes,
			"raft_group": p.RaftGroup,
		})
	}
	return map[string]any{
		"name": t.Name, "partitions": parts, "replication_factor": t.Config.ReplicationFactor,
		"retention_ms": t.Config.RetentionMs, "retention_bytes": t.Config.RetentionBytes,
		"max_batch_bytes": t.Config.MaxBatchBytes,
	}
}

func retentionText(c *stratav1.TopicConfig) string {
	var parts []string
	if c.RetentionMs > 0 {
		parts = append(parts, (time.Duration(c.RetentionMs) * time.Millisecond).String())
	}
	if c.RetentionBytes > 0 {
		parts = append(parts, bytesText(c.RetentionBytes))
	}
	if len(parts) == 0 {
		return "forever"
	}
	return strings.Join(parts, " or ")
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
