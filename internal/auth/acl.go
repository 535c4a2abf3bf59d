package auth

import (
	"fmt"
	"strings"
)

// Operation is what a request does to a resource.
type Operation string

const (
	// OpProduce writes records to a topic.
	OpProduce Operation = "produce"
	// OpConsume reads records from a topic, or consumes as a member of a
	// group or queue.
	OpConsume Operation = "consume"
	// OpCreate creates a resource.
	OpCreate Operation = "create"
	// OpDelete deletes a resource.
	OpDelete Operation = "delete"
	// OpDescribe reads a resource's metadata.
	OpDescribe Operation = "describe"
	// OpAdmin changes a resource's configuration or, on the cluster,
	// manages users, ACLs and nodes.
	OpAdmin Operation = "admin"
	// OpAll stands for every operation in an ACL; a request never asks for it.
	OpAll Operation = "all"
)

// ResourceType is the kind of thing an ACL protects.
type ResourceType string

const (
	// ResourceTopic is a topic.
	ResourceTopic ResourceType = "topic"
	// ResourceGroup is a consumer group.
	ResourceGroup ResourceType = "group"
	// ResourceQueue is a queue group.
	ResourceQueue ResourceType = "queue"
	// ResourceCluster is the cluster as a whole; requests name it ClusterName.
	ResourceCluster ResourceType = "cluster"
)

// ClusterName is the resource name requests use for ResourceCluster (there is
// one cluster); ACLs may name it or "*".
const ClusterName = "cluster"

// PatternType says how an ACL's Name is matched.
type PatternType string

const (
	// PatternLiteral matches the name exactly; the literal name "*" matches
	// every name.
	PatternLiteral PatternType = "literal"
	// PatternPrefix matches every name that starts with the ACL's name.
	PatternPrefix PatternType = "prefix"
)

// Permission says whether a matching ACL allows or denies.
type Permission string

const (
	// PermissionAllow allows the operation.
	PermissionAllow Permission = "allow"
	// PermissionDeny denies the operation, whatever any allow says.
	PermissionDeny Permission = "deny"
)

const (
	// Anonymous is the principal of a client that did not authenticate.
	Anonymous = "user:ANONYMOUS"
	// AnyUser, as an ACL's principal, matches every "user:" principal.
	AnyUser = "user:*"
	// Wildcard, as a literal ACL name, matches every name.
	Wildcard = "*"

	userPrefix = "user:"
	nodePrefix = "node:"
)

// ACL is one authorization rule, as stored in the metadata group.
type ACL struct {
	// Principal is "user:<name>", "node:<id>" or AnyUser.
	Principal string `json:"principal"`
	// Permission is allow or deny.
	Permission Permission `json:"permission"`
	// Operation is the operation ruled on, or OpAll.
	Operation Operation `json:"operation"`
	// Resource is the type of resource ruled on.
	Resource ResourceType `json:"resource"`
	// Name is the resource name, a prefix (Pattern prefix) or "*".
	Name string `json:"name"`
	// Pattern says how Name matches.
	Pattern PatternType `json:"pattern"`
}

// Validate checks that every field of a is known and well formed. Rules are
// validated before they are stored; the Authorizer does not check them again.
func (a ACL) Validate() error {
	if err := validPrincipal(a.Principal); err != nil {
		return err
	}
	switch {
	case a.Permission != PermissionAllow && a.Permission != PermissionDeny:
		return fmt.Errorf("%w: permission %q", ErrInvalidACL, string(a.Permission))
	case !a.Operation.valid() && a.Operation != OpAll:
		return fmt.Errorf("%w: operation %q", ErrInvalidACL, string(a.Operation))
	case !a.Resource.valid():
		return fmt.Errorf("%w: resource type %q", ErrInvalidACL, string(a.Resource))
	case a.Pattern != PatternLiteral && a.Pattern != PatternPrefix:
		return fmt.Errorf("%w: pattern type %q", ErrInvalidACL, string(a.Pattern))
	case a.Name == "":
		return fmt.Errorf("%w: empty resource name", ErrInvalidACL)
	case a.Pattern == PatternPrefix && a.Name == Wildcard:
		return fmt.Errorf("%w: %q is a wildcard only with pattern literal", ErrInvalidACL, Wildcard)
	case hasControl(a.Name):
		return fmt.Errorf("%w: control character in resource name", ErrInvalidACL)
	}
	return nil
}

// validPrincipal accepts "user:<name>", "node:<id>" and AnyUser.
func validPrincipal(p string) error {
	var rest string
	switch {
	case strings.HasPrefix(p, userPrefix):
		rest = p[len(userPrefix):]
	case strings.HasPrefix(p, nodePrefix):
		rest = p[len(nodePrefix):]
		if rest == Wildcard {
			return fmt.Errorf("%w: principal %q: only users have a wildcard", ErrInvalidACL, p)
		}
	default:
		return fmt.Errorf("%w: principal %q is not user:<name> or node:<id>", ErrInvalidACL, p)
	}
	if rest == "" || hasControl(rest) {
		return fmt.Errorf("%w: principal %q has an empty or unprintable name", ErrInvalidACL, p)
	}
	return nil
}

// hasControl reports whether s has an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// valid reports whether op is a request operation (not OpAll).
func (op Operation) valid() bool {
	switch op {
	case OpProduce, OpConsume, OpCreate, OpDelete, OpDescribe, OpAdmin:
		return true
	}
	return false
}

// valid reports whether r is a known resource type.
func (r ResourceType) valid() bool {
	switch r {
	case ResourceTopic, ResourceGroup, ResourceQueue, ResourceCluster:
		return true
	}
	return false
}

// String formats a for the CLI and the audit log, e.g.
// "allow user:alice produce on topic prefix orders-".
func (a ACL) String() string {
	return fmt.Sprintf("%s %s %s on %s %s %s", a.Permission, a.Principal, a.Operation, a.Resource, a.Pattern, a.Name)
}

// Matches reports whether a applies to principal doing op on the resource of
// type res named name. AnyUser matches every user principal (not nodes);
// OpAll matches every operation; an allow of any operation also matches
// describe (as in Kafka: who may produce to a topic may see it). A deny
// matches only its own operation (or every one for OpAll): a deny of
// describe implies nothing else, and a deny of produce does not deny
// describe.
func (a ACL) Matches(principal string, op Operation, res ResourceType, name string) bool {
	return a.Resource == res && a.matchesPrincipal(principal) && a.matchesOp(op) && a.matchesName(name)
}

// matchesPrincipal reports whether a's principal covers principal.
func (a ACL) matchesPrincipal(principal string) bool {
	if a.Principal == AnyUser {
		return strings.HasPrefix(principal, userPrefix)
	}
	return a.Principal == principal
}

// matchesOp reports whether a's operation covers op, with implied describe.
func (a ACL) matchesOp(op Operation) bool {
	return a.Operation == op || a.Operation == OpAll ||
		(op == OpDescribe && a.Permission == PermissionAllow)
}

// matchesName reports whether a's name and pattern cover name.
func (a ACL) matchesName(name string) bool {
	if a.Pattern == PatternPrefix {
		return strings.HasPrefix(name, a.Name)
	}
	return a.Name == name || a.Name == Wildcard
}
