package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// Kind says what a name is: a file (an object with that key), a directory
// (a common prefix "key/" or a "key/" marker) or both at once.
type Kind uint8

// Kinds, combinable.
const (
	KindFile Kind = 1 << iota
	KindDir
)

// Has reports whether k includes all bits of o.
func (k Kind) Has(o Kind) bool { return k&o == o }

// Node is the result of resolving one name.
type Node struct {
	Kind   Kind
	Object store.Object // valid when Kind has KindFile
}

// objEntry is what the cache knows of one key as an object.
type objEntry struct {
	obj    store.Object
	exists bool
}

// dirEntry says whether "key/" has anything under it.
type dirEntry struct {
	exists bool
}

type metaCache struct {
	s   store.ObjectStore
	cfg Config
	// scope prefixes every item key: "" for the one identity of a mount
	// without Config.Scope, else the identity's (scope.go).
	scope string

	lru *metaLRU
	// maxListing is the largest listing (in bytes) cached whole: a quarter
	// of the bound, so one huge directory cannot flush everything else.
	maxListing int64
	// lastListing estimates the cost of the next listing from those made
	// last (see sawListing), for how many listings prefetch may read ahead.
	lastListing atomic.Int64

	heads flight[objEntry]
	walks flight[struct{}] // background listings (prefetch.go)
	probe flight[dirEntry]
	bkts  flight[[]store.Bucket]

	mu        sync.Mutex
	buckets   []store.Bucket
	bucketsAt time.Time
}

func newMetaCache(ctx context.Context, s store.ObjectStore, cfg Config) *metaCache {
	m := &metaCache{
		s:          s,
		cfg:        cfg,
		lru:        newMetaLRU(cfg.MetadataBytes),
		maxListing: cfg.MetadataBytes / 4,
	}
	m.heads.timeout = cfg.RequestTimeout
	m.probe.timeout = cfg.RequestTimeout
	m.bkts.timeout = cfg.RequestTimeout
	m.walks.timeout = cfg.RequestTimeout
	m.heads.base, m.probe.base, m.bkts.base, m.walks.base = ctx, ctx, ctx, ctx
	return m
}

// close drops what the metadata cache holds. It runs no goroutine of
// its own to stop.
func (m *metaCache) close() {
	m.lru.purge()
}

func mkey(bucket, key string) string { return bucket + "\x00" + key }

// fresh reports whether what was learnt at (Unix nanoseconds) is still
// trusted: an absence not learnt from a complete listing only for the
// negative TTL.
func (m *metaCache) fresh(at int64, negative, sure bool) bool {
	ttl := m.cfg.MetadataTTL
	if negative && !sure {
		ttl = m.cfg.NegativeTTL
	}
	return m.cfg.Now().UnixNano()-at < int64(ttl)
}

func (m *metaCache) getObj(bucket, key string) (objEntry, bool) {
	return m.objOf(m.item(keyName, bucket, key), key)
}

// objOf is what the name item it (nil: none) says of key as an object.
func (m *metaCache) objOf(it *mitem, key string) (objEntry, bool) {
	if it == nil || !it.objKnown || !m.fresh(it.objAt, !it.objExists, it.objSure) {
		return objEntry{}, false
	}
	if !it.objExists {
		return objEntry{}, true
	}
	return objEntry{obj: it.obj.object(key, it.raw()), exists: true}, true
}

func (m *metaCache) getDir(bucket, key string) (dirEntry, bool) {
	return m.dirOf(m.item(keyName, bucket, key))
}

// dirOf is what the name item it (nil: none) says of its key as a directory.
func (m *metaCache) dirOf(it *mitem) (dirEntry, bool) {
	if it == nil || !it.dirKnown || !m.fresh(it.dirAt, !it.dirExists, it.dirSure) {
		return dirEntry{}, false
	}
	return dirEntry{exists: it.dirExists}, true
}

// Buckets lists the buckets, cached for the metadata TTL.
func (c *Cache) Buckets(ctx context.Context) ([]store.Bucket, error) {
	m, err := c.metaFor(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.buckets != nil && m.fresh(m.bucketsAt.UnixNano(), false, true) {
		b := m.buckets
		m.mu.Unlock()
		return b, nil
	}
	m.mu.Unlock()
	return m.bkts.Do(ctx, "", func(ctx context.Context) ([]store.Bucket, error) {
		b, err := m.s.ListBuckets(ctx)
		if err != nil {
			return nil, err
		}
		if b == nil {
			b = []store.Bucket{}
		}
		m.mu.Lock()
		m.buckets, m.bucketsAt = b, m.cfg.Now()
		m.mu.Unlock()
		return b, nil
	})
}

// CheckBucket reports whether bucket exists and may be listed: nil, or an
// error wrapping store.ErrNotFound or store.ErrAccessDenied. It costs one
// one-key LIST per metadata TTL.
func (c *Cache) CheckBucket(ctx context.Context, bucket string) error {
	m, err := c.metaFor(ctx)
	if err != nil {
		return err
	}
	if d, ok := m.getDir(bucket, ""); ok {
		if d.exists {
			return nil
		}
		return fmt.Errorf("bucket %s: %w", bucket, store.ErrNotFound)
	}
	d, err := m.probe.Do(ctx, mkey(bucket, ""), func(ctx context.Context) (dirEntry, error) {
		_, err := m.s.List(ctx, store.ListInput{Bucket: bucket, MaxKeys: 1})
		switch {
		case err == nil:
			return m.putDir(bucket, "", true, false), nil
		case errors.Is(err, store.ErrNotFound):
			return m.putDir(bucket, "", false, false), nil
		default:
			return dirEntry{}, err
		}
	})
	if err != nil {
		return err
	}
	if !d.exists {
		return fmt.Errorf("bucket %s: %w", bucket, store.ErrNotFound)
	}
	return nil
}

func (m *metaCache) putObj(bucket, key string, obj store.Object, exists, sure bool) objEntry {
	var rec meta
	var raw string
	if exists {
		rec, raw = pack(obj)
	}
	now := m.cfg.Now().UnixNano()
	m.lru.setName(m.lkey(keyName, bucket, key), &raw, func(it *mitem) {
		it.obj, it.objAt, it.objKnown, it.objExists, it.objSure = rec, now, true, exists, sure
	})
	return objEntry{obj: obj, exists: exists}
}

func (m *metaCache) putDir(bucket, key string, exists, sure bool) dirEntry {
	now := m.cfg.Now().UnixNano()
	m.lru.setName(m.lkey(keyName, bucket, key), nil, func(it *mitem) {
		it.dirAt, it.dirKnown, it.dirExists, it.dirSure = now, true, exists, sure
	})
	return dirEntry{exists: exists}
}

// head runs one de-duplicated HeadObject and caches its answer.
func (m *metaCache) head(ctx context.Context, bucket, key string) (objEntry, error) {
	return m.heads.Do(ctx, mkey(bucket, key), func(ctx context.Context) (objEntry, error) {
		obj, err := m.s.Stat(ctx, bucket, key)
		switch {
		case err == nil:
			return m.putObj(bucket, key, obj, true, false), nil
		case errors.Is(err, store.ErrNotFound):
			return m.putObj(bucket, key, store.Object{}, false, false), nil
		default:
			return objEntry{}, err
		}
	})
}

// isDir runs one de-duplicated one-key LIST of "key/" and caches its answer.
//
// The LIST asks for a whole first page rather than one key: it costs about
// the same round trip, and a path being opened (R's
// read.csv("/mnt/s3/bucket/data/x.csv") on a fresh mount) then finds its
// next component already cached instead of paying another round trip.
// A directory that fits in one page is cached as a complete listing.
func (m *metaCache) isDir(ctx context.Context, bucket, key string) (dirEntry, error) {
	return m.probe.Do(ctx, mkey(bucket, key), func(ctx context.Context) (dirEntry, error) {
		r := &DirReader{m: m, bucket: bucket, prefix: key + "/"}
		if err := r.fetch(ctx); err != nil {
			return dirEntry{}, err
		}
		return m.putDir(bucket, key, r.seen > 0, false), nil
	})
}

// parentPrefix returns the listing prefix that holds key: "" for a top-level
// key, else everything up to and including the last "/".
func parentPrefix(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i+1]
	}
	return ""
}

// Lookup resolves key (no trailing "/") in bucket. It answers from cached
// listings and metadata when they are fresh; otherwise it sends HeadObject
// for the key and a one-key LIST of "key/" in parallel. A name that is
// neither gives an error wrapping store.ErrNotFound.
func (c *Cache) Lookup(ctx context.Context, bucket, key string) (Node, error) {
	m, err := c.metaFor(ctx)
	if err != nil {
		return Node{}, err
	}
	it := m.item(keyName, bucket, key)
	o, oOK := m.objOf(it, key)
	d, dOK := m.dirOf(it)
	if !oOK || !dOK {
		if l := m.relisted(ctx, bucket, parentPrefix(key)); l != nil {
			kind, obj := l.find(key[len(parentPrefix(key)):])
			return nodeOrNotFound(bucket, key, kind, obj)
		}
	}
	return m.lookup(ctx, bucket, key, o, oOK, d, dOK)
}

// lookup asks the server what Lookup's caches did not say (oOK, dOK
// false): a HEAD and a probe of "key/" in parallel. It is a function of
// its own so that the cached answers of Lookup allocate nothing for it.
func (m *metaCache) lookup(ctx context.Context, bucket, key string, o objEntry, oOK bool, d dirEntry, dOK bool) (Node, error) {
	var wg sync.WaitGroup
	var oErr, dErr error
	if !oOK {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, oErr = m.head(ctx, bucket, key)
		}()
	}
	if !dOK {
		d, dErr = m.isDir(ctx, bucket, key)
	}
	wg.Wait()
	// The directory wins: an error on HEAD does not hide a directory.
	if dErr == nil && d.exists {
		n := Node{Kind: KindDir}
		if oErr == nil && o.exists {
			n.Kind |= KindFile
			n.Object = o.obj
		}
		return n, nil
	}
	if dErr != nil {
		return Node{}, dErr
	}
	if oErr != nil {
		return Node{}, oErr
	}
	var kind Kind
	if o.exists {
		kind = KindFile
	}
	return nodeOrNotFound(bucket, key, kind, o.obj)
}

func nodeOrNotFound(bucket, key string, kind Kind, obj store.Object) (Node, error) {
	if kind == 0 {
		return Node{}, fmt.Errorf("%s/%s: %w", bucket, key, store.ErrNotFound)
	}
	return Node{Kind: kind, Object: obj}, nil
}

// Forget drops what the cache knows about key and its parent listing, so
// the next lookup or open asks the server. Called when a read finds the
// object changed. It forgets for every identity (scope.go).
func (c *Cache) Forget(bucket, key string) {
	for _, m := range c.metas() {
		m.lru.remove(m.lkey(keyName, bucket, key))
		m.lru.remove(m.lkey(keyList, bucket, parentPrefix(key)))
	}
}

// MetadataStats says what the metadata cache holds and what it may hold.
func (c *Cache) MetadataStats() MetadataStats { return c.meta.lru.stats() }
