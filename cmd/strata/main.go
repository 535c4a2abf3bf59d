// Command strata is Strata's one binary: `strata server` runs a node, and
// the other commands are clients of a running cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `strata: a replicated, append-only message log with work-queue semantics

Usage:
  strata server   [flags]            run a node (data in ./data by default)
  strata topic    create|list|describe|delete
  strata produce  TOPIC              one record per line of standard input
  strata consume  TOPIC              print records
  strata group    list|describe|reset
  strata queue    create|receive|describe|redrive|reset   queue groups: per-record ack, retries, dead letters
  strata bench    produce|consume|e2e|queue   load generator: throughput and latency
  strata cluster  status|remove-node ID|gossip-key
  strata user     create|passwd|delete|list    users (SCRAM credentials)
  strata acl      add|remove|list              access rules
  strata cert     create-ca|create-node|create-client   certificates for TLS
  strata whoami                         the principal the broker sees

Every client command takes --brokers (or STRATA_BROKERS; default 127.0.0.1:7400)
and, for a secured cluster, --tls-ca, --tls-cert/--tls-key or --user/--password-file.
Run 'strata COMMAND -h' for a command's flags.
`

// exitError carries a process exit code.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "strata:", err)
		os.Exit(1)
	}
}

// commands are strata's commands, by name.
var commands = withHelp(map[string]command{
	"server":  runServer,
	"topic":   runTopic,
	"produce": runProduce,
	"consume": runConsume,
	"group":   runGroup,
	"queue":   runQueue,
	"bench":   runBench,
	"cluster": runCluster,
	"user":    runUser,
	"acl":     runACL,
	"whoami":  runWhoAmI,
	"cert":    runCert,
}, usage)

func run(ctx context.Context, args []string) error {
	return dispatch(ctx, args, commands, usage, func(cmd string) string {
		return fmt.Sprintf("strata: unknown command %q\n\n%s", cmd, usage)
	})
}
