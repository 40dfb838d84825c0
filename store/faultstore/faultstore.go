// Package faultstore wraps a store.ObjectStore (and store.Writer) to count calls and inject
// errors or delays, so cache and fs tests can assert how many requests reach
// the object service and how failures propagate.
package faultstore

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/bucketfs/bucketfs/store"
)

// Operation names accepted by Count and passed to the hook.
const (
	OpListBuckets = "ListBuckets"
	OpList        = "List"
	OpStat        = "Stat"
	OpReadAt      = "ReadAt"
	// Writes (write.go).
	OpCreateBucket = "CreateBucket"
	OpPut          = "Put" // Put and PutIf; key is the object's
	OpDelete       = "Delete"
	OpCopy         = "Copy" // key is the destination
	OpStartUpload  = "StartUpload"
	OpPutPart      = "PutPart"
	OpCopyPart     = "CopyPart" // key is the upload's
	OpComplete     = "Complete"
	OpAbort        = "Abort"
)

// Hook runs before each call with the operation name and its bucket and key
// (the prefix for List, "" where not applicable). A non-nil error is returned
// to the caller instead of calling the inner store. A hook that sleeps should
// honour ctx.
type Hook func(ctx context.Context, op, bucket, key string) error

// Store is a counting, fault-injecting store.ObjectStore. It is safe for
// concurrent use.
type Store struct {
	inner store.ObjectStore

	listBuckets, list, stat, readAt atomic.Int64
	writes                          [9]atomic.Int64 // by writeOps index

	mu   sync.RWMutex
	hook Hook
}

var (
	_ store.ObjectStore = (*Store)(nil)
	_ store.Writer      = (*Store)(nil)
)

// New wraps inner. The write methods work when inner is a store.Writer too,
// and fail with store.ErrUnsupported otherwise.
func New(inner store.ObjectStore) *Store {
	return &Store{inner: inner}
}

// SetHook installs h (nil removes it). It applies to calls that start after
// SetHook returns.
func (s *Store) SetHook(h func(ctx context.Context, op, bucket, key string) error) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// Count returns how many calls of op were made since New or the last Reset,
// including calls the hook failed. Unknown op names count zero.
func (s *Store) Count(op string) int64 {
	if c := s.counter(op); c != nil {
		return c.Load()
	}
	return 0
}

// Reset sets all counters to zero. The hook is kept.
func (s *Store) Reset() {
	s.listBuckets.Store(0)
	s.list.Store(0)
	s.stat.Store(0)
	s.readAt.Store(0)
	for i := range s.writes {
		s.writes[i].Store(0)
	}
}

func (s *Store) counter(op string) *atomic.Int64 {
	switch op {
	case OpListBuckets:
		return &s.listBuckets
	case OpList:
		return &s.list
	case OpStat:
		return &s.stat
	case OpReadAt:
		return &s.readAt
	}
	for i, w := range writeOps {
		if w == op {
			return &s.writes[i]
		}
	}
	return nil
}

// before counts the call and runs the hook.
func (s *Store) before(ctx context.Context, op, bucket, key string) error {
	s.counter(op).Add(1)
	s.mu.RLock()
	h := s.hook
	s.mu.RUnlock()
	if h == nil {
		return nil
	}
	return h(ctx, op, bucket, key)
}

// ListBuckets counts, runs the hook, then calls the inner store.
func (s *Store) ListBuckets(ctx context.Context) ([]store.Bucket, error) {
	if err := s.before(ctx, OpListBuckets, "", ""); err != nil {
		return nil, err
	}
	return s.inner.ListBuckets(ctx)
}

// List counts, runs the hook (key = in.Prefix), then calls the inner store.
func (s *Store) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	if err := s.before(ctx, OpList, in.Bucket, in.Prefix); err != nil {
		return store.ListPage{}, err
	}
	return s.inner.List(ctx, in)
}

// Stat counts, runs the hook, then calls the inner store.
func (s *Store) Stat(ctx context.Context, bucket, key string) (store.Object, error) {
	if err := s.before(ctx, OpStat, bucket, key); err != nil {
		return store.Object{}, err
	}
	return s.inner.Stat(ctx, bucket, key)
}

// ReadRange counts and hooks as OpReadAt: both are one ranged GET.
func (s *Store) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	if err := s.before(ctx, OpReadAt, bucket, key); err != nil {
		return nil, err
	}
	return s.inner.ReadRange(ctx, bucket, key, etag, off, n)
}
