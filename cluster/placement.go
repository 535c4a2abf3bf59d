package cluster

import (
	"cmp"
	"slices"

	"github.com/stratalog/strata/internal/topic"
)

// Placement is decided by the metadata leader alone, from the metadata it
// has applied, by the pure functions below: the same inputs give the same
// plan, and the plan is what the metadata records.
//
// A data group has RF voters. For each replication factor in use, the
// cluster keeps about nodes x DataGroupsPerNode / RF groups of that RF, so
// that every node is a voter of about DataGroupsPerNode of them; each group
// has a preferred leader, spread so that every node is preferred for about
// the same number of groups. A new partition goes into the group of its
// topic's RF whose preferred leader leads the fewest partitions (then the
// group with the fewest partitions, then the lowest id): partition leaders
// spread evenly while the preferred leaders lead.

// PlanDataGroups returns the data groups to create, with ids from nextID
// on, so that there are enough groups of rf voters for nodes (sorted ids of
// the live nodes). It returns nothing when rf exceeds the nodes or the
// groups suffice.
func PlanDataGroups(groups []DataGroupInfo, nodes []string, rf, perNode int, nextID uint32) []DataGroupInfo {
	if rf < 1 || rf > len(nodes) || perNode < 1 {
		return nil
	}
	nodes = slices.Sorted(slices.Values(nodes))
	member := map[string]int{}
	preferred := map[string]int{}
	have := 0
	for _, g := range groups {
		if len(g.Voters) != rf {
			continue
		}
		have++
		for _, v := range g.Voters {
			member[v]++
		}
		preferred[g.PreferredLeader()]++
	}
	want := (len(nodes)*perNode + rf - 1) / rf
	// Every node should be a voter of at least one group of this rf, also
	// when the count is already reached (a node joined).
	missing := 0
	for _, n := range nodes {
		if member[n] == 0 {
			missing++
		}
	}
	need := max(want-have, (missing+rf-1)/rf)
	var out []DataGroupInfo
	for range need {
		cand := slices.Clone(nodes)
		slices.SortStableFunc(cand, func(a, b string) int { return cmp.Compare(member[a], member[b]) })
		voters := slices.Sorted(slices.Values(cand[:rf]))
		pref := voters[0]
		for _, v := range voters[1:] {
			if preferred[v] < preferred[pref] {
				pref = v
			}
		}
		for _, v := range voters {
			member[v]++
		}
		preferred[pref]++
		out = append(out, DataGroupInfo{ID: nextID, Voters: voters, Initial: slices.Clone(voters), Preferred: pref})
		nextID++
	}
	return out
}

// PlacePartitions assigns count new partitions to groups of rf voters.
// load is the number of partitions each group holds already. It returns
// nil when no group has rf voters.
func PlacePartitions(groups []DataGroupInfo, load map[uint32]int, rf, count int) []topic.Assignment {
	var cands []DataGroupInfo
	leads := map[string]int{}
	parts := map[uint32]int{}
	for _, g := range groups {
		leads[g.PreferredLeader()] += load[g.ID]
		parts[g.ID] = load[g.ID]
		if len(g.Voters) == rf {
			cands = append(cands, g)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b DataGroupInfo) int { return cmp.Compare(a.ID, b.ID) })
	out := make([]topic.Assignment, count)
	for i := range out {
		best := cands[0]
		for _, g := range cands[1:] {
			lb, lg := leads[best.PreferredLeader()], leads[g.PreferredLeader()]
			if lg < lb || lg == lb && parts[g.ID] < parts[best.ID] {
				best = g
			}
		}
		leads[best.PreferredLeader()]++
		parts[best.ID]++
		out[i] = topic.Assignment{DataGroup: best.ID, Replicas: slices.Clone(best.Voters)}
	}
	return out
}

// ReplaceNode returns the groups that held node id as a voter, with id
// replaced by the live node (not already a voter) that is a voter of the
// fewest groups, or simply dropped when there is none. A group whose only
// voter was id keeps no voter and holds nothing any more.
func ReplaceNode(groups []DataGroupInfo, id string, live []string) []DataGroupInfo {
	member := map[string]int{}
	for _, g := range groups {
		for _, v := range g.Voters {
			member[v]++
		}
	}
	live = slices.Sorted(slices.Values(live))
	var out []DataGroupInfo
	for _, g := range groups {
		i := slices.Index(g.Voters, id)
		if i < 0 {
			continue
		}
		g = g.Clone()
		oldPref := g.PreferredLeader()
		repl := ""
		for _, n := range live {
			if n == id || slices.Contains(g.Voters, n) {
				continue
			}
			if repl == "" || member[n] < member[repl] {
				repl = n
			}
		}
		if repl != "" {
			g.Voters[i] = repl
			member[repl]++
		} else {
			g.Voters = slices.Delete(g.Voters, i, i+1)
		}
		g.Preferred = oldPref
		if oldPref == id {
			g.Preferred = repl
			if repl == "" && len(g.Voters) > 0 {
				g.Preferred = g.Voters[0]
			}
		}
		out = append(out, g)
	}
	return out
}
