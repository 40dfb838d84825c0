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
