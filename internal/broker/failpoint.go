package broker

import (
	"fmt"
	"slices"
	"strings"
)

// Failpoints are faults that only test binaries can switch on: they exist
// to show that a test of a guarantee fails without the protection. They
// are compiled in only with `go build -tags failpoints`
// (failpoint_on.go), which reads the comma-separated names in the
// environment variable STRATA_FAILPOINTS when the process starts; in any
// other build each one is the constant false (failpoint_off.go), so the
// compiler drops the code behind it and nothing a user sets can turn
// safety off. The end-to-end tests in cmd/strata build a second strata
// binary with the tag for the runs that must fail.
//
// ack-before-commit: a produce is answered at once, before raft has
// committed (and fsynced) its batch; the batch reaches raft a second later,
// in the order of the answers (failpoint_on.go), so that a crash soon after
// the answers loses acknowledged records on every run, not only when the
// machine happens to be slow.
const failpointsEnv = "STRATA_FAILPOINTS"

// failpointNames are the failpoints there are.
var failpointNames = []string{"ack-before-commit"}

// parseFailpoints parses a comma-separated list of failpoint names; an
// unknown name is an error.
func parseFailpoints(s string) (map[string]bool, error) {
	on := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(failpointNames, name) {
			return nil, fmt.Errorf("broker: %s: unknown failpoint %q (known: %s)",
				failpointsEnv, name, strings.Join(failpointNames, ", "))
		}
		on[name] = true
	}
	return on, nil
}
