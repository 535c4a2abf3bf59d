package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
)

func runTopic(ctx context.Context, args []string) error {
	sub, args, fs, cf, err := subcommand("topic", "usage: strata topic create|list|describe|delete ...", args)
	if err != nil {
		return err
	}
	var partitions, rf int
	var retention time.Duration
	var retentionBytes int64
	var maxBatch int
	if sub == "create" {
		fs.IntVar(&partitions, "partitions", 1, "number of partitions")
		fs.IntVar(&rf, "replication-factor", 0, "replicas per partition (default min(3, nodes))")
		fs.DurationVar(&retention, "retention", 0, "delete records older than this (0: keep forever), e.g. 168h")
		fs.Int64Var(&retentionBytes, "retention-bytes", 0, "keep at most this many bytes per partition (0: no limit)")
		fs.IntVar(&maxBatch, "max-batch-bytes", 0, "largest batch accepted (default 1 MiB)")
	}
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	cl, closeFn, err := cf.dialAdmin(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	rctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	name := fs.Arg(0)
	needName := func() error {
		if name == "" {
			fmt.Fprintf(os.Stderr, "usage: strata topic %s NAME\n", sub)
			return exitError{2}
		}
		return nil
	}
	switch sub {
	case "create":
		if err := needName(); err != nil {
			return err
		}
		resp, err := cl.CreateTopic(rctx, &stratav1.CreateTopicRequest{Name: name, Config: &stratav1.TopicConfig{
			Partitions: int32(partitions), ReplicationFactor: int32(rf), RetentionMs: retention.Milliseconds(),
			RetentionBytes: retentionBytes, MaxBatchBytes: int32(maxBatch)}})
		if err != nil {
			return rpcErr(err)
		}
		if cf.output == "json" {
			return printJSON(topicJSON(resp.Topic))
		}
		n := len(resp.Topic.Partitions)
		fmt.Printf("created topic %s with %d partition%s\n", name, n, map[bool]string{true: "s"}[n != 1])
		return nil
	case "list":
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
	case "describe":
		if err := needName(); err != nil {
			return err
		}
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
	case "delete":
		if err := needName(); err != nil {
			return err
		}
		if _, err := cl.DeleteTopic(rctx, &stratav1.DeleteTopicRequest{Name: name}); err != nil {
			return rpcErr(err)
		}
		fmt.Printf("deleted topic %s\n", name)
		return nil
	}
	fmt.Fprintf(os.Stderr, "strata topic: unknown subcommand %q (create, list, describe, delete)\n", sub)
	return exitError{2}
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
