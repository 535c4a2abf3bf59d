package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// clusterCommands are the subcommands of `strata cluster`.
var clusterCommands = map[string]command{
	"status":      clusterStatusCmd,
	"remove-node": clusterRemoveNode,
	"gossip-key":  clusterGossipKey,
}

func runCluster(ctx context.Context, args []string) error {
	return dispatch(ctx, args, clusterCommands,
		"usage: strata cluster status|remove-node ID|gossip-key generate|list|install|use|remove [KEY]\n",
		unknownSub("cluster", "status, remove-node, gossip-key"))
}

func clusterStatusCmd(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("cluster status")
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		st, err := cl.ClusterStatus(rctx, &stratav1.ClusterStatusRequest{})
		if err != nil {
			return rpcErr(err)
		}
		if cf.output == "json" {
			return printJSON(statusJSONOf(st))
		}
		return printStatus(st)
	})
}

// printStatus prints the nodes and the raft groups of a cluster status.
func printStatus(st *stratav1.ClusterStatusResponse) error {
	fmt.Printf("metadata leader %s (answered by %s)\n\n", st.MetadataLeader, st.AnsweredBy)
	tw := newTable()
	fmt.Fprintln(tw, "NODE\tSTATE\tMETADATA\tLED\tFOLLOWED\tGRPC\tCLUSTER")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", n.Id, n.State, n.MetaRole, n.PartitionsLed,
			n.PartitionsFollowed, n.GrpcAddr, n.ClusterAddr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Println()
	tw = newTable()
	fmt.Fprintln(tw, "GROUP\tLEADER\tPREFERRED\tVOTERS\tPARTITIONS\tLAGGING")
	for _, g := range st.Groups {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", g.Id, g.Leader, g.Preferred, strings.Join(g.Voters, ","),
			g.Partitions, strings.Join(g.Lagging, ","))
	}
	return tw.Flush()
}

func clusterRemoveNode(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("cluster remove-node")
	id, err := parseName(fs, args, "usage: strata cluster remove-node ID")
	if err != nil {
		return err
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		if _, err := cl.RemoveNode(rctx, &stratav1.RemoveNodeRequest{Id: id}); err != nil {
			return rpcErr(err)
		}
		fmt.Printf("removed node %s; its replicas are being re-placed\n", id)
		return nil
	})
}

func statusJSONOf(st *stratav1.ClusterStatusResponse) map[string]any {
	nodes := []map[string]any{}
	for _, n := range st.Nodes {
		nodes = append(nodes, map[string]any{
			"id": n.Id, "state": n.State, "meta_role": n.MetaRole, "partitions_led": n.PartitionsLed,
			"partitions_followed": n.PartitionsFollowed, "groups_led": n.GroupsLed,
			"grpc_addr": n.GrpcAddr, "cluster_addr": n.ClusterAddr,
		})
	}
	groups := []map[string]any{}
	lagging := []string{}
	for _, g := range st.Groups {
		groups = append(groups, map[string]any{
			"id": g.Id, "leader": g.Leader, "preferred": g.Preferred, "voters": g.Voters,
			"partitions": g.Partitions, "lagging": g.Lagging,
		})
		for _, l := range g.Lagging {
			lagging = append(lagging, fmt.Sprintf("%d:%s", g.Id, l))
		}
	}
	return map[string]any{"metadata_leader": st.MetadataLeader, "answered_by": st.AnsweredBy,
		"nodes": nodes, "groups": groups, "lagging": lagging}
}

const gossipKeyUsage = "usage: strata cluster gossip-key generate | list | install KEY | use KEY | remove KEY"

// gossipKeyGenerate prints a new random 32-byte gossip key, base64.
func gossipKeyGenerate() error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	fmt.Println(base64.StdEncoding.EncodeToString(key))
	return nil
}

// clusterGossipKey rotates the gossip encryption key on every member:
// install the new key, use it (make it primary), then remove the old one.
// generate only prints a new key.
func clusterGossipKey(ctx context.Context, args []string) error {
	fs, cf := clientFlagSet("cluster gossip-key")
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	action, key := fs.Arg(0), fs.Arg(1)
	switch action {
	case "generate":
		return gossipKeyGenerate()
	case "list":
	case "install", "use", "remove":
		if key == "" {
			fmt.Fprintln(os.Stderr, gossipKeyUsage)
			return exitError{2}
		}
	default:
		fmt.Fprintln(os.Stderr, gossipKeyUsage)
		return exitError{2}
	}
	return adminCall(ctx, cf, func(rctx context.Context, cl stratav1.StrataClient) error {
		resp, err := cl.GossipKey(rctx, &stratav1.GossipKeyRequest{Action: action, Key: key})
		if err != nil {
			return rpcErr(err)
		}
		if cf.output == "json" {
			return printJSON(resp)
		}
		return printGossipKeys(action, resp)
	})
}

// printGossipKeys prints what a gossip-key action did on the members.
func printGossipKeys(action string, resp *stratav1.GossipKeyResponse) error {
	fmt.Printf("%s: %d members, %d failed\n", action, resp.Members, resp.Failed)
	for _, n := range slices.Sorted(maps.Keys(resp.Errors)) {
		fmt.Printf("  %s: %s\n", n, resp.Errors[n])
	}
	for _, k := range slices.Sorted(maps.Keys(resp.Keys)) {
		mark := ""
		if k == resp.Primary {
			mark = " (primary)"
		}
		fmt.Printf("  %s held by %d members%s\n", k, resp.Keys[k], mark)
	}
	if resp.Failed > 0 {
		return fmt.Errorf("%d members did not %s the key", resp.Failed, action)
	}
	return nil
}
