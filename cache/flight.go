package cache

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// flight de-duplicates concurrent calls with the same key: the first caller
// runs fn, the others wait for its result. The work runs on a context that
// is detached from any single caller's cancellation (a FUSE interrupt of one
// reader must not fail the others), bounded by timeout instead.
type flight[T any] struct {
	timeout time.Duration   // bounds each detached call; 0 means none
	base    context.Context // ends every call when it ends (Cache.Close); nil means never
	mu      sync.Mutex
	calls   map[string]*call[T]
}

type call[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// Do runs fn once per key at a time. A caller whose ctx ends stops waiting
// and gets ctx.Err(); the call itself goes on for the others.
func (f *flight[T]) Do(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) (T, error) {
	c := f.start(ctx, key, fn)
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Go starts fn for key unless a call for key is under way, and returns
// without waiting.
func (f *flight[T]) Go(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) {
	f.start(ctx, key, fn)
}

func (f *flight[T]) start(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) *call[T] {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = make(map[string]*call[T])
	}
	if c, ok := f.calls[key]; ok {
		return c
	}
	c := &call[T]{done: make(chan struct{})}
	f.calls[key] = c
	go func() {
		wctx := context.WithoutCancel(ctx)
		if f.timeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(wctx, f.timeout)
			defer cancel()
		}
		if f.base != nil {
			var cancel context.CancelFunc
			wctx, cancel = context.WithCancel(wctx)
			defer cancel()
			defer context.AfterFunc(f.base, cancel)()
		}
		defer func() {
			// Nothing above this goroutine would recover a panic: turn
			// it into the call's error instead of ending the daemon.
			if r := recover(); r != nil {
				c.err = fmt.Errorf("internal error: %v\n%s", r, debug.Stack())
			}
			f.mu.Lock()
			delete(f.calls, key)
			f.mu.Unlock()
			close(c.done)
		}()
		c.val, c.err = fn(wctx)
	}()
	return c
}

// Wait waits for a call with key that is already under way, if any, and
// reports whether there was one. It starts nothing.
func (f *flight[T]) Wait(ctx context.Context, key string) bool {
	f.mu.Lock()
	c, ok := f.calls[key]
	f.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case <-c.done:
	case <-ctx.Done():
	}
	return true
}
