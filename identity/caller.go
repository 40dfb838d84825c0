package identity

import "context"

// Caller is the process behind a request: what FUSE tells of it.
type Caller struct {
	UID, GID, PID uint32
}

type callerKey struct{}

// WithCaller returns ctx carrying c (for callers that are not FUSE
// requests: tests, whoami).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the Caller WithCaller put in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// One resolution per request. A per-user request is resolved to its
// principal once, where it enters the namespace (Set.Within); the context
// then carries the principal, and every later question of the same request
// (the cache's scope, the namespace's writer) reads it from there instead
// of asking the Set again.
//
// The principal answers to two keys, on purpose:
//   - Principal.Key names an AWS identity (the user under one rule): the
//     cache keeps listings and metadata per Key (cache.Config.Scope),
//     since what S3 shows depends on the credentials, and a user given
//     another rule (SIGHUP) must not be answered from what the old
//     credentials were shown.
//   - Principal.Owner ("uid N") names a Linux user: what the mount keeps
//     for a user as a user (the staging directory their uid owns, the
//     files they are writing, what the delete guard lets them delete,
//     namespace.Identity.Key) stays theirs across a change of rule.

type principalKey struct{}

// WithPrincipal returns ctx carrying p as its caller's principal.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal WithPrincipal put in ctx.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
