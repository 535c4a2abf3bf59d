package auth

import (
	"context"
	"testing"
)

func TestPrincipalContext(t *testing.T) {
	if p, ok := PrincipalFrom(context.Background()); ok || p != "" {
		t.Fatalf("empty context has principal %q", p)
	}
	ctx := WithPrincipal(context.Background(), "user:alice")
	if p, ok := PrincipalFrom(ctx); !ok || p != "user:alice" {
		t.Fatalf("got %q, %v", p, ok)
	}
	type otherKey struct{}
	ctx = context.WithValue(ctx, otherKey{}, "user:mallory")
	if p, _ := PrincipalFrom(WithPrincipal(ctx, Anonymous)); p != Anonymous {
		t.Fatalf("inner principal not found: %q", p)
	}
}
