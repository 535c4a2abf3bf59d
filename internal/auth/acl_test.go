package auth

import (
	"encoding/json"
	"errors"
	"testing"
)

func allow(p string, op Operation, res ResourceType, name string, pat PatternType) ACL {
	return ACL{Principal: p, Permission: PermissionAllow, Operation: op, Resource: res, Name: name, Pattern: pat}
}

func deny(p string, op Operation, res ResourceType, name string, pat PatternType) ACL {
	a := allow(p, op, res, name, pat)
	a.Permission = PermissionDeny
	return a
}

func TestACLValidate(t *testing.T) {
	t.Parallel()
	good := allow("user:alice", OpProduce, ResourceTopic, "orders", PatternLiteral)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, ok := range []ACL{
		allow(AnyUser, OpAll, ResourceTopic, Wildcard, PatternLiteral),
		deny("node:3", OpAdmin, ResourceCluster, ClusterName, PatternLiteral),
		allow("user:bob", OpConsume, ResourceQueue, "jobs-", PatternPrefix),
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*ACL)
	}{
		{"no principal type", func(a *ACL) { a.Principal = "alice" }},
		{"empty user", func(a *ACL) { a.Principal = "user:" }},
		{"node wildcard", func(a *ACL) { a.Principal = "node:*" }},
		{"group principal", func(a *ACL) { a.Principal = "group:x" }},
		{"control in principal", func(a *ACL) { a.Principal = "user:a\nb" }},
		{"permission", func(a *ACL) { a.Permission = "maybe" }},
		{"operation", func(a *ACL) { a.Operation = "write" }},
		{"resource", func(a *ACL) { a.Resource = "broker" }},
		{"pattern", func(a *ACL) { a.Pattern = "" }},
		{"empty name", func(a *ACL) { a.Name = "" }},
		{"prefix wildcard", func(a *ACL) { a.Pattern, a.Name = PatternPrefix, Wildcard }},
		{"control in name", func(a *ACL) { a.Name = "a\x00" }},
	} {
		a := good
		tc.mutate(&a)
		if err := a.Validate(); !errors.Is(err, ErrInvalidACL) {
			t.Errorf("%s: got %v", tc.name, err)
		}
	}
}

func TestACLStringAndJSON(t *testing.T) {
	t.Parallel()
	a := allow("user:alice", OpProduce, ResourceTopic, "orders-", PatternPrefix)
	if got, want := a.String(), "allow user:alice produce on topic prefix orders-"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"principal":"user:alice","permission":"allow","operation":"produce","resource":"topic","name":"orders-","pattern":"prefix"}`
	if string(b) != want {
		t.Fatalf("json %s, want %s", b, want)
	}
	var back ACL
	if err := json.Unmarshal(b, &back); err != nil || back != a {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestACLMatches(t *testing.T) {
	t.Parallel()
	type q struct {
		p    string
		op   Operation
		res  ResourceType
		name string
	}
	for _, tc := range []struct {
		name string
		acl  ACL
		q    q
		want bool
	}{
		{"literal", allow("user:a", OpProduce, ResourceTopic, "t", PatternLiteral), q{"user:a", OpProduce, ResourceTopic, "t"}, true},
		{"literal other name", allow("user:a", OpProduce, ResourceTopic, "t", PatternLiteral), q{"user:a", OpProduce, ResourceTopic, "t2"}, false},
		{"literal is not a prefix", allow("user:a", OpProduce, ResourceTopic, "t", PatternLiteral), q{"user:a", OpProduce, ResourceTopic, "tt"}, false},
		{"prefix", allow("user:a", OpProduce, ResourceTopic, "t-", PatternPrefix), q{"user:a", OpProduce, ResourceTopic, "t-1"}, true},
		{"prefix equal", allow("user:a", OpProduce, ResourceTopic, "t-", PatternPrefix), q{"user:a", OpProduce, ResourceTopic, "t-"}, true},
		{"prefix miss", allow("user:a", OpProduce, ResourceTopic, "t-", PatternPrefix), q{"user:a", OpProduce, ResourceTopic, "t"}, false},
		{"wildcard name", allow("user:a", OpProduce, ResourceTopic, "*", PatternLiteral), q{"user:a", OpProduce, ResourceTopic, "anything"}, true},
		{"wildcard other type", allow("user:a", OpProduce, ResourceTopic, "*", PatternLiteral), q{"user:a", OpProduce, ResourceGroup, "anything"}, false},
		{"other principal", allow("user:a", OpProduce, ResourceTopic, "t", PatternLiteral), q{"user:b", OpProduce, ResourceTopic, "t"}, false},
		{"any user", allow(AnyUser, OpProduce, ResourceTopic, "t", PatternLiteral), q{"user:b", OpProduce, ResourceTopic, "t"}, true},
		{"any user anonymous", allow(AnyUser, OpProduce, ResourceTopic, "t", PatternLiteral), q{Anonymous, OpProduce, ResourceTopic, "t"}, true},
		{"any user not node", allow(AnyUser, OpProduce, ResourceTopic, "t", PatternLiteral), q{"node:1", OpProduce, ResourceTopic, "t"}, false},
		{"all ops", allow("user:a", OpAll, ResourceTopic, "t", PatternLiteral), q{"user:a", OpDelete, ResourceTopic, "t"}, true},
		{"other op", allow("user:a", OpProduce, ResourceTopic, "t", PatternLiteral), q{"user:a", OpConsume, ResourceTopic, "t"}, false},
		{"allow implies describe", allow("user:a", OpConsume, ResourceTopic, "t", PatternLiteral), q{"user:a", OpDescribe, ResourceTopic, "t"}, true},
		{"deny does not imply describe", deny("user:a", OpProduce, ResourceTopic, "t", PatternLiteral), q{"user:a", OpDescribe, ResourceTopic, "t"}, false},
		{"describe implies nothing", allow("user:a", OpDescribe, ResourceTopic, "t", PatternLiteral), q{"user:a", OpProduce, ResourceTopic, "t"}, false},
		{"deny describe implies nothing", deny("user:a", OpDescribe, ResourceTopic, "t", PatternLiteral), q{"user:a", OpProduce, ResourceTopic, "t"}, false},
		{"deny all covers describe", deny("user:a", OpAll, ResourceTopic, "t", PatternLiteral), q{"user:a", OpDescribe, ResourceTopic, "t"}, true},
	} {
		if got := tc.acl.Matches(tc.q.p, tc.q.op, tc.q.res, tc.q.name); got != tc.want {
			t.Errorf("%s: %v matches %+v = %v, want %v", tc.name, tc.acl, tc.q, got, tc.want)
		}
	}
}
