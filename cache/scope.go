package cache

import (
	"context"
	"fmt"
	"sync"

	"github.com/bucketfs/bucketfs/store"
)

// Scopes: one mount, many identities (bucketfs mount --identity per-user).
// With Config.Scope set, every request names the identity it is made for
// (through its context), and what the cache learns from the store is kept
// for that identity alone: each identity has a metaCache of its own (its
// own listings, per-name records, bucket list and de-duplicated requests),
// all in the one metadata LRU, their item keys prefixed by the scope, so
// the bound holds for all of them together. One identity's answer never
// answers another's question.
//
// Blocks of data are shared: they are keyed by bucket, key and ETag, and
// the namespace lets a reader at them only after that reader's own
// identity showed it the same version (namespace.File.Open). A block is
// fetched with the identity of the reader that first asked for it
// (object.vals).
//
// The mount's own writes are recorded for the writer's identity; the
// other identities forget the names involved, so they ask the server.

type scopes struct {
	mu sync.RWMutex // read-held on every request of a per-user mount
	m  map[string]*metaCache
}

// metaFor returns the metadata cache of the identity ctx names: the one
// metaCache without Config.Scope. An identity that cannot be resolved
// gives Config.Scope's error, and no cache.
func (c *Cache) metaFor(ctx context.Context) (*metaCache, error) {
	if c.cfg.Scope == nil {
		return c.meta, nil
	}
	id, err := c.cfg.Scope(ctx)
	if err != nil {
		return nil, err
	}
	c.sc.mu.RLock()
	m := c.sc.m[id]
	c.sc.mu.RUnlock()
	if m != nil {
		return m, nil
	}
	c.sc.mu.Lock()
	defer c.sc.mu.Unlock()
	if c.sc.m == nil {
		c.sc.m = map[string]*metaCache{}
	}
	m = c.sc.m[id]
	if m == nil {
		m = newMetaCache(c.ctx, c.store, c.cfg)
		m.lru = c.meta.lru // one bound for every identity
		// Bucket names have no control characters, so no scope is a
		// prefix of another's keys or of the unscoped ones.
		m.scope = "\x01" + id + "\x01"
		c.sc.m[id] = m
	}
	return m, nil
}

// sameScope refuses a request (a readdir through a directory handle that
// another process passed on) made for another identity than the one m
// keeps: what it fetched would be kept for the wrong identity.
func (m *metaCache) sameScope(ctx context.Context) error {
	if m.cfg.Scope == nil {
		return nil
	}
	id, err := m.cfg.Scope(ctx)
	if err != nil {
		return err
	}
	if len(m.scope) != len(id)+2 || m.scope[1:len(m.scope)-1] != id {
		return fmt.Errorf("directory opened for another identity: %w", store.ErrAccessDenied)
	}
	return nil
}

// metas returns every metadata cache, for what must be forgotten by all.
func (c *Cache) metas() []*metaCache {
	c.sc.mu.RLock()
	defer c.sc.mu.RUnlock()
	out := make([]*metaCache, 0, 1+len(c.sc.m))
	out = append(out, c.meta)
	for _, m := range c.sc.m {
		out = append(out, m)
	}
	return out
}

// others returns the metadata caches other than m.
func (c *Cache) others(m *metaCache) []*metaCache {
	all := c.metas()
	out := all[:0]
	for _, o := range all {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

// Scoped reports whether the cache keeps metadata per identity.
func (c *Cache) Scoped() bool { return c.cfg.Scope != nil }

// Identities returns how many identities have a metadata scope.
func (c *Cache) Identities() int {
	c.sc.mu.RLock()
	defer c.sc.mu.RUnlock()
	return len(c.sc.m)
}

// valuesCtx ends with its Context and takes its values from vals: work in
// the background (a block fetch, a listing read ahead) keeps the identity
// of the request that caused it without ending with that request.
type valuesCtx struct {
	context.Context
	vals context.Context
}

func (v valuesCtx) Value(key any) any { return v.vals.Value(key) }

// withValues returns ctx with the values of vals (nil: ctx itself).
func withValues(ctx, vals context.Context) context.Context {
	if vals == nil {
		return ctx
	}
	return valuesCtx{Context: ctx, vals: vals}
}

// detach keeps ctx's values (the identity) without its cancellation or deadline.
func detach(ctx context.Context) context.Context {
	if ctx == nil {
		return nil
	}
	return context.WithoutCancel(ctx)
}
