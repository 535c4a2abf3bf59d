package auth

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

// MaxCachedDecisions bounds the Authorizer's decision cache; when it is full
// the cache starts over empty.
const MaxCachedDecisions = 1 << 16

// Authorizer decides whether a principal may do an operation on a resource,
// from a rule set replaced as a whole by Update. It is safe for concurrent
// use; Authorize takes no lock and, for a decision already cached, does not
// allocate.
type Authorizer struct {
	super   map[string]struct{} // immutable after NewAuthorizer
	enabled atomic.Bool
	cache   atomic.Pointer[decisionCache] // the rules and the decisions taken from them

	mu sync.Mutex // serializes Update
}

// ruleSet is an immutable, indexed rule set.
type ruleSet struct {
	version uint64
	buckets map[bucketKey]*bucket
}

// bucketKey groups the rules of one principal (or AnyUser) on one resource
// type.
type bucketKey struct {
	principal string
	res       ResourceType
}

// bucket holds one bucketKey's rules by pattern.
type bucket struct {
	literal  map[string][]ACL // by name
	wildcard []ACL            // literal "*"
	prefix   []ACL
}

// decisionCache holds the decisions taken from one rule set. It is replaced,
// never cleared, so a decision computed from old rules lands in the old
// cache only.
type decisionCache struct {
	rules *ruleSet
	m     sync.Map // uint64 (decisionKey.hash) -> *decision
	n     atomic.Int64
}

// decisionKey identifies one question. op and res are small indexes (see
// opIndex).
type decisionKey struct {
	principal, name string
	op, res         uint8
}

// decision is a cached answer with the question it answers, to tell a hash
// collision from a hit.
type decision struct {
	key   decisionKey
	allow bool
}

// hashSeed seeds the decision cache's hashes.
var hashSeed = maphash.MakeSeed()

// hash returns k's cache key. The cache is keyed by this uint64 rather than
// by the struct: hashing a struct behind an interface (sync.Map) goes
// through the runtime's generic type hash, twice as slow as two string
// hashes.
func (k decisionKey) hash() uint64 {
	h := maphash.String(hashSeed, k.principal)
	h = h*0x9e3779b97f4a7c15 ^ maphash.String(hashSeed, k.name)
	return h*0x9e3779b97f4a7c15 ^ uint64(k.op)<<8 ^ uint64(k.res)
}

// NewAuthorizer returns an enabled Authorizer with no rules (so everyone but
// the super-users is denied) and the given super-user principals, which are
// allowed everything.
func NewAuthorizer(superUsers []string) *Authorizer {
	a := &Authorizer{super: make(map[string]struct{}, len(superUsers))}
	for _, p := range superUsers {
		a.super[p] = struct{}{}
	}
	a.enabled.Store(true)
	a.cache.Store(&decisionCache{rules: &ruleSet{}})
	return a
}

// SetEnabled turns authorization on or off; when off, Authorize allows
// everything.
func (a *Authorizer) SetEnabled(on bool) { a.enabled.Store(on) }

// Enabled reports whether authorization is on.
func (a *Authorizer) Enabled() bool { return a.enabled.Load() }

// Version returns the version of the rule set in force.
func (a *Authorizer) Version() uint64 { return a.cache.Load().rules.version }

// Update replaces the rule set with acls, taken at the given version (for
// example the raft index of the metadata change). An update older than the
// rule set in force is ignored, so updates applied out of order cannot roll
// the rules back; an update at the same version replaces them. Every cached
// decision is dropped. Update does not validate the rules: validate them
// before they are stored.
func (a *Authorizer) Update(acls []ACL, version uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if version < a.cache.Load().rules.version {
		return
	}
	a.cache.Store(&decisionCache{rules: newRuleSet(acls, version)})
}

// Authorize reports whether principal may do op on the resource of type res
// named name: always when authorization is disabled or principal is a
// super-user; otherwise never when a matching rule denies, and only when a
// matching rule allows.
func (a *Authorizer) Authorize(principal string, op Operation, res ResourceType, name string) bool {
	if !a.enabled.Load() {
		return true
	}
	if _, ok := a.super[principal]; ok {
		return true
	}
	c := a.cache.Load()
	oi, ri := opIndex(op), resIndex(res)
	if oi == 0 || ri == 0 {
		return c.rules.allowed(principal, op, res, name) // not worth a cache slot
	}
	key := decisionKey{principal: principal, name: name, op: oi, res: ri}
	h := key.hash()
	if v, ok := c.m.Load(h); ok {
		if d := v.(*decision); d.key == key {
			return d.allow
		}
	}
	d := c.rules.allowed(principal, op, res, name)
	if c.n.Add(1) > MaxCachedDecisions {
		a.cache.CompareAndSwap(c, &decisionCache{rules: c.rules})
	} else {
		// Clones, so the cache never pins a request buffer a name was cut from.
		key.principal, key.name = strings.Clone(principal), strings.Clone(name)
		c.m.Store(h, &decision{key: key, allow: d})
	}
	return d
}

// newRuleSet indexes acls by principal and resource type.
func newRuleSet(acls []ACL, version uint64) *ruleSet {
	rs := &ruleSet{version: version, buckets: make(map[bucketKey]*bucket)}
	for _, r := range acls {
		k := bucketKey{principal: r.Principal, res: r.Resource}
		b := rs.buckets[k]
		if b == nil {
			b = &bucket{literal: make(map[string][]ACL)}
			rs.buckets[k] = b
		}
		switch {
		case r.Pattern == PatternPrefix:
			b.prefix = append(b.prefix, r)
		case r.Name == Wildcard:
			b.wildcard = append(b.wildcard, r)
		default:
			b.literal[r.Name] = append(b.literal[r.Name], r)
		}
	}
	return rs
}

// allowed evaluates the rules: deny wins, then allow, then default deny.
func (rs *ruleSet) allowed(principal string, op Operation, res ResourceType, name string) bool {
	allow := false
	for _, p := range [2]string{principal, AnyUser} {
		if p == AnyUser && (principal == AnyUser || !strings.HasPrefix(principal, userPrefix)) {
			continue
		}
		b := rs.buckets[bucketKey{principal: p, res: res}]
		if b == nil {
			continue
		}
		for _, rules := range [3][]ACL{b.literal[name], b.wildcard, b.prefix} {
			for _, r := range rules {
				if !r.Matches(principal, op, res, name) {
					continue
				}
				if r.Permission == PermissionDeny {
					return false
				}
				allow = allow || r.Permission == PermissionAllow
			}
		}
	}
	return allow
}

// opIndex returns a small index for a request operation, 0 for any other.
func opIndex(op Operation) uint8 {
	switch op {
	case OpProduce:
		return 1
	case OpConsume:
		return 2
	case OpCreate:
		return 3
	case OpDelete:
		return 4
	case OpDescribe:
		return 5
	case OpAdmin:
		return 6
	}
	return 0
}

// resIndex returns a small index for a resource type, 0 for any other.
func resIndex(res ResourceType) uint8 {
	switch res {
	case ResourceTopic:
		return 1
	case ResourceGroup:
		return 2
	case ResourceQueue:
		return 3
	case ResourceCluster:
		return 4
	}
	return 0
}
