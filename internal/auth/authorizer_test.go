package auth

import (
	"fmt"
	"sync"
	"testing"
)

func TestAuthorize(t *testing.T) {
	t.Parallel()
	rules := []ACL{
		allow("user:alice", OpProduce, ResourceTopic, "orders", PatternLiteral),
		allow("user:alice", OpConsume, ResourceTopic, "logs-", PatternPrefix),
		deny("user:alice", OpConsume, ResourceTopic, "logs-secret", PatternLiteral),
		allow("user:bob", OpAll, ResourceTopic, Wildcard, PatternLiteral),
		deny("user:bob", OpDelete, ResourceTopic, "prod-", PatternPrefix),
		allow(AnyUser, OpConsume, ResourceTopic, "public", PatternLiteral),
		deny(AnyUser, OpProduce, ResourceTopic, "readonly", PatternLiteral),
		allow("user:carol", OpProduce, ResourceTopic, "readonly", PatternLiteral),
		allow("user:carol", OpConsume, ResourceGroup, "g", PatternLiteral),
		allow("node:2", OpAdmin, ResourceCluster, ClusterName, PatternLiteral),
		deny("user:dave", OpDescribe, ResourceQueue, "q", PatternLiteral),
		allow("user:dave", OpConsume, ResourceQueue, "q", PatternLiteral),
	}
	a := NewAuthorizer([]string{"user:root", "node:1"})
	a.Update(rules, 1)
	for _, tc := range []struct {
		name, p string
		op      Operation
		res     ResourceType
		rname   string
		want    bool
	}{
		{"literal allow", "user:alice", OpProduce, ResourceTopic, "orders", true},
		{"literal is exact", "user:alice", OpProduce, ResourceTopic, "orders2", false},
		{"other op default deny", "user:alice", OpDelete, ResourceTopic, "orders", false},
		{"prefix allow", "user:alice", OpConsume, ResourceTopic, "logs-app", true},
		{"deny wins over prefix allow", "user:alice", OpConsume, ResourceTopic, "logs-secret", false},
		{"deny is literal", "user:alice", OpConsume, ResourceTopic, "logs-secret2", true},
		{"wildcard all", "user:bob", OpCreate, ResourceTopic, "x", true},
		{"deny prefix over wildcard", "user:bob", OpDelete, ResourceTopic, "prod-1", false},
		{"wildcard is per type", "user:bob", OpCreate, ResourceGroup, "x", false},
		{"any user allow", "user:zed", OpConsume, ResourceTopic, "public", true},
		{"any user anonymous", Anonymous, OpConsume, ResourceTopic, "public", true},
		{"any user not a node", "node:7", OpConsume, ResourceTopic, "public", false},
		{"any user deny wins over own allow", "user:carol", OpProduce, ResourceTopic, "readonly", false},
		{"implied describe", "user:alice", OpDescribe, ResourceTopic, "orders", true},
		{"implied describe prefix", "user:alice", OpDescribe, ResourceTopic, "logs-x", true},
		{"implied describe group", "user:carol", OpDescribe, ResourceGroup, "g", true},
		{"deny describe keeps consume", "user:dave", OpConsume, ResourceQueue, "q", true},
		{"deny describe wins over implied", "user:dave", OpDescribe, ResourceQueue, "q", false},
		{"node rule", "node:2", OpAdmin, ResourceCluster, ClusterName, true},
		{"super user", "user:root", OpAdmin, ResourceCluster, ClusterName, true},
		{"super node", "node:1", OpDelete, ResourceTopic, "orders", true},
		{"default deny", "user:nobody", OpProduce, ResourceTopic, "orders", false},
		{"unknown op", "user:bob", Operation("frob"), ResourceTopic, "x", true},
		{"unknown op not super", "user:alice", Operation("frob"), ResourceTopic, "orders", false},
	} {
		for round := 0; round < 2; round++ { // the second answer comes from the cache
			if got := a.Authorize(tc.p, tc.op, tc.res, tc.rname); got != tc.want {
				t.Errorf("%s (round %d): Authorize(%s, %s, %s, %s) = %v, want %v", tc.name, round, tc.p, tc.op, tc.res, tc.rname, got, tc.want)
			}
		}
	}
}

func TestAuthorizeDisabled(t *testing.T) {
	t.Parallel()
	a := NewAuthorizer(nil)
	if !a.Enabled() || a.Authorize("user:x", OpProduce, ResourceTopic, "t") {
		t.Fatal("a new authorizer must be enabled and deny by default")
	}
	a.SetEnabled(false)
	if a.Enabled() || !a.Authorize("user:x", OpProduce, ResourceTopic, "t") {
		t.Fatal("a disabled authorizer must allow")
	}
	a.SetEnabled(true)
	if a.Authorize("user:x", OpProduce, ResourceTopic, "t") {
		t.Fatal("re-enabled authorizer allows")
	}
}

// TestAuthorizeCacheInvalidation checks that a cached decision does not
// outlive the rules it came from.
func TestAuthorizeCacheInvalidation(t *testing.T) {
	t.Parallel()
	a := NewAuthorizer(nil)
	q := func() bool { return a.Authorize("user:alice", OpProduce, ResourceTopic, "orders") }
	a.Update([]ACL{allow("user:alice", OpProduce, ResourceTopic, "orders", PatternLiteral)}, 5)
	if evaluated, cached := q(), q(); !evaluated || !cached {
		t.Fatal("allow rule not applied")
	}
	if _, ok := a.cache.Load().m.Load(decisionKey{"user:alice", "orders", opIndex(OpProduce), resIndex(ResourceTopic)}.hash()); !ok {
		t.Fatal("decision was not cached")
	}
	a.Update([]ACL{
		allow("user:alice", OpProduce, ResourceTopic, "orders", PatternLiteral),
		deny("user:alice", OpProduce, ResourceTopic, "ord", PatternPrefix),
	}, 6)
	if q() {
		t.Fatal("cached allow survived an Update that denies")
	}
	a.Update(nil, 6) // same version: applied
	if q() {
		t.Fatal("empty rule set allows")
	}
	a.Update([]ACL{allow("user:alice", OpProduce, ResourceTopic, "orders", PatternLiteral)}, 4)
	if q() || a.Version() != 6 {
		t.Fatalf("an older update was applied (version %d)", a.Version())
	}
}

// TestAuthorizeCacheCollision plants an allow for another question under a
// question's hash: a collision must count as a miss, not as an answer.
func TestAuthorizeCacheCollision(t *testing.T) {
	t.Parallel()
	a := NewAuthorizer(nil)
	key := decisionKey{"user:eve", "secret", opIndex(OpConsume), resIndex(ResourceTopic)}
	other := decisionKey{"user:alice", "public", opIndex(OpConsume), resIndex(ResourceTopic)}
	a.cache.Load().m.Store(key.hash(), &decision{key: other, allow: true})
	if a.Authorize("user:eve", OpConsume, ResourceTopic, "secret") {
		t.Fatal("a colliding cache entry answered")
	}
}

func TestAuthorizeCacheBound(t *testing.T) {
	t.Parallel()
	a := NewAuthorizer(nil)
	a.Update([]ACL{allow(AnyUser, OpConsume, ResourceTopic, Wildcard, PatternLiteral)}, 1)
	first := a.cache.Load()
	for i := 0; i <= MaxCachedDecisions; i++ {
		if !a.Authorize("user:u", OpConsume, ResourceTopic, fmt.Sprint("t", i)) {
			t.Fatal("denied")
		}
	}
	if a.cache.Load() == first || a.cache.Load().rules != first.rules {
		t.Fatal("a full cache was not started over with the same rules")
	}
	if n := a.cache.Load().n.Load(); n > 1 {
		t.Fatalf("new cache has %d entries", n)
	}
}

// TestAuthorizeConcurrentUpdate runs Authorize against Updates that flip the
// answer; once an Update has returned, every later Authorize sees it.
func TestAuthorizeConcurrentUpdate(t *testing.T) {
	t.Parallel()
	a := NewAuthorizer([]string{"user:root"})
	rules := [2][]ACL{
		{allow("user:a", OpProduce, ResourceTopic, "t", PatternLiteral)},
		{deny("user:a", OpProduce, ResourceTopic, "t", PatternLiteral)},
	}
	const rounds = 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a.Authorize("user:a", OpProduce, ResourceTopic, "t")
				a.Authorize(fmt.Sprint("user:", i%50), OpDescribe, ResourceTopic, "t")
			}
		}()
	}
	for v := uint64(1); v <= rounds; v++ {
		a.Update(rules[v%2], v)
		if got, want := a.Authorize("user:a", OpProduce, ResourceTopic, "t"), v%2 == 0; got != want {
			close(stop)
			wg.Wait()
			t.Fatalf("version %d: Authorize = %v, want %v", v, got, want)
		}
	}
	close(stop)
	wg.Wait()
}

// benchRules returns n rules: 100 users with literal and prefix rules on
// topics, groups and queues, a few denies and any-user rules.
func benchRules(n int) []ACL {
	rules := make([]ACL, 0, n)
	for i := 0; len(rules) < n; i++ {
		u := fmt.Sprintf("user:u%d", i%100)
		switch i % 10 {
		case 0:
			rules = append(rules, allow(u, OpProduce, ResourceTopic, fmt.Sprintf("team%d-", i), PatternPrefix))
		case 1:
			rules = append(rules, deny(u, OpDelete, ResourceTopic, fmt.Sprintf("prod%d-", i), PatternPrefix))
		case 2:
			rules = append(rules, allow(u, OpConsume, ResourceGroup, fmt.Sprintf("g%d", i), PatternLiteral))
		case 3:
			rules = append(rules, allow(AnyUser, OpDescribe, ResourceTopic, fmt.Sprintf("pub%d", i), PatternLiteral))
		default:
			rules = append(rules, allow(u, OpConsume, ResourceTopic, fmt.Sprintf("topic%d", i), PatternLiteral))
		}
	}
	return rules
}

func BenchmarkAuthorizeCached(b *testing.B) {
	a := NewAuthorizer([]string{"user:root"})
	a.Update(benchRules(1000), 1)
	if !a.Authorize("user:u5", OpConsume, ResourceTopic, "topic505") {
		b.Fatal("denied")
	}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Authorize("user:u5", OpConsume, ResourceTopic, "topic505") {
			b.Fatal("denied")
		}
	}
}

// BenchmarkAuthorizeUncached asks a different question each time, so every
// call misses the cache, evaluates the rules and stores the decision (and
// the cache starts over every MaxCachedDecisions calls).
func BenchmarkAuthorizeUncached(b *testing.B) {
	a := NewAuthorizer([]string{"user:root"})
	a.Update(benchRules(1000), 1)
	names := make([]string, 2*MaxCachedDecisions+1) // odd length: no repeats in step with the reset
	for i := range names {
		names[i] = fmt.Sprintf("team%d-x%d", (i%100)*10, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a.Authorize("user:u0", OpProduce, ResourceTopic, names[i])
		i = (i + 1) % len(names)
	}
}

// BenchmarkRuleEvaluation measures the rule evaluation alone (what a cache
// miss costs before the store).
func BenchmarkRuleEvaluation(b *testing.B) {
	a := NewAuthorizer(nil)
	a.Update(benchRules(1000), 1)
	rs := a.cache.Load().rules
	b.ReportAllocs()
	for b.Loop() {
		if !rs.allowed("user:u5", OpConsume, ResourceTopic, "topic505") {
			b.Fatal("denied")
		}
	}
}
