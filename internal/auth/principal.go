package auth

import "context"

// principalKey is the context key of the principal; unexported so only this
// package can set it.
type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying the authenticated principal p
// ("user:<name>", "node:<id>" or Anonymous).
func WithPrincipal(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal WithPrincipal put in ctx, and false if
// there is none (which is not the same as Anonymous: the request did not go
// through authentication at all).
func PrincipalFrom(ctx context.Context) (string, bool) {
	p, ok := ctx.Value(principalKey{}).(string)
	return p, ok
}
