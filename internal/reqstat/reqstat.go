// Package reqstat carries per-request figures through a context, from the
// code that sends a request (the SDK's retryer, deep inside the S3 client)
// back to the code that measures it (store/metered), without either
// importing the other.
package reqstat

import (
	"context"
	"sync/atomic"
)

// Counter collects what happened to one store call. Its methods are safe for
// concurrent use: a multipart Put retries parts in parallel under one call.
type Counter struct {
	retries atomic.Int64
}

// Retries is how many retries were granted so far.
func (c *Counter) Retries() int64 {
	if c == nil {
		return 0
	}
	return c.retries.Load()
}

type counterKey struct{}

// WithCounter returns a context carrying a new Counter, and the Counter.
func WithCounter(ctx context.Context) (context.Context, *Counter) {
	c := &Counter{}
	return context.WithValue(ctx, counterKey{}, c), c
}

// FromContext returns the Counter of ctx, nil when there is none.
func FromContext(ctx context.Context) *Counter {
	c, _ := ctx.Value(counterKey{}).(*Counter)
	return c
}

// Retried records one retry on the Counter of ctx; without one it does
// nothing (requests that no store call measures, such as STS).
func Retried(ctx context.Context) {
	if c := FromContext(ctx); c != nil {
		c.retries.Add(1)
	}
}
