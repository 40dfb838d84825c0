package cache

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// MaxCachedListing is the largest directory (in entries) whose complete
// listing is kept; larger ones are listed again on each readdir, while
// their entries' metadata is still cached.
const MaxCachedListing = 200_000

// DirEntry is one name in a directory listing. Name is relative to the
// directory and is exactly what the keys say: it may be unusable as a file
// name ("", ".", "..", too long); the fs layer decides what to show.
type DirEntry struct {
	Name   string
	Kind   Kind
	Object store.Object // valid when Kind has KindFile
}

// listing is a complete, cached directory listing.
type listing struct {
	at      time.Time
	entries []DirEntry
	index   map[string]int
}

func (l *listing) find(name string) (Kind, store.Object) {
	if i, ok := l.index[name]; ok {
		return l.entries[i].Kind, l.entries[i].Object
	}
	return 0, store.Object{}
}

func (m *metaCache) freshListing(bucket, prefix string) *listing {
	l, ok := m.lists.Get(mkey(bucket, prefix))
	if !ok || !m.fresh(l.at, false, true) {
		return nil
	}
	return l
}

// DirReader walks one directory. It serves a fresh cached listing when there
// is one; otherwise it fetches ListObjectsV2 pages only as the caller asks
// for more entries, caching every entry's metadata as pages arrive (so the
// kernel's READDIRPLUS lookups cost nothing) and the whole listing once
// complete. It is not safe for concurrent use.
type DirReader struct {
	m      *metaCache
	bucket string
	prefix string

	cached []DirEntry // non-nil when serving from the listing cache

	started bool
	done    bool
	seen    int // keys and common prefixes the server returned, markers included
	token   string
	at      time.Time
	pending []store.Object // objects that may still turn out to be directories too
	ready   []DirEntry
	all     []DirEntry // everything yielded, for the listing cache
	tooMany bool
}

// ReadDir starts a walk of the directory prefix ("" for the bucket's root,
// else ending in "/").
func (c *Cache) ReadDir(bucket, prefix string) *DirReader {
	c.prefetchSubdirs(bucket, prefix)
	r := &DirReader{m: c.meta, bucket: bucket, prefix: prefix}
	r.useCached()
	return r
}

// useCached switches r to a fresh cached listing if there is one.
func (r *DirReader) useCached() bool {
	l := r.m.freshListing(r.bucket, r.prefix)
	if l == nil {
		return false
	}
	r.cached = l.entries
	if r.cached == nil {
		r.cached = []DirEntry{}
	}
	return true
}

// Next returns the next entry; ok is false at the end of the directory.
func (r *DirReader) Next(ctx context.Context) (e DirEntry, ok bool, err error) {
	if r.cached != nil {
		if len(r.cached) == 0 {
			return DirEntry{}, false, nil
		}
		e, r.cached = r.cached[0], r.cached[1:]
		return e, true, nil
	}
	if !r.started && r.m.walks.Wait(ctx, mkey(r.bucket, r.prefix)) && r.useCached() {
		// A background listing of this directory just finished.
		return r.Next(ctx)
	}
	for len(r.ready) == 0 {
		if r.done {
			return DirEntry{}, false, nil
		}
		if err := r.fetch(ctx); err != nil {
			return DirEntry{}, false, err
		}
	}
	e, r.ready = r.ready[0], r.ready[1:]
	return e, true, nil
}

// fetch gets one more page and moves what it settles to r.ready.
func (r *DirReader) fetch(ctx context.Context) error {
	if !r.started {
		r.started, r.at = true, r.m.cfg.Now()
	}
	ctx, cancel := context.WithTimeout(ctx, r.m.cfg.RequestTimeout)
	defer cancel()
	page, err := r.m.s.List(ctx, store.ListInput{Bucket: r.bucket, Prefix: r.prefix, Delimiter: "/", Token: r.token, MaxKeys: r.m.cfg.ListPageSize})
	if err != nil {
		return err
	}
	// S3 returns keys and common prefixes each sorted; walk them merged so
	// that an object "x" is seen before the prefix "x/" that may shadow it.
	objs, pfxs := page.Objects, page.Prefixes
	r.seen += len(objs) + len(pfxs)
	for len(objs) > 0 || len(pfxs) > 0 {
		if len(pfxs) == 0 || (len(objs) > 0 && objs[0].Key < pfxs[0]) {
			r.object(objs[0])
			objs = objs[1:]
		} else {
			r.commonPrefix(pfxs[0])
			pfxs = pfxs[1:]
		}
	}
	r.token = page.NextToken
	if r.token == "" {
		r.done = true
		r.settle("")
		r.finish()
	}
	return nil
}

func (r *DirReader) object(o store.Object) {
	if o.Key == r.prefix {
		return // the directory's own "dir/" marker
	}
	r.settle(o.Key)
	r.m.putObj(r.bucket, o.Key, o, true, false)
	r.pending = append(r.pending, o)
}

func (r *DirReader) commonPrefix(p string) {
	key := strings.TrimSuffix(p, "/")
	r.settle(p)
	r.m.putDir(r.bucket, key, true, true)
	e := DirEntry{Name: key[len(r.prefix):], Kind: KindDir}
	// A pending object with the same name is shadowed by this directory;
	// they become one entry of both kinds.
	shadowed := false
	for i, o := range r.pending {
		if o.Key == key {
			e.Kind |= KindFile
			e.Object = o
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			shadowed = true
			break
		}
	}
	if !shadowed {
		r.m.putObj(r.bucket, key, store.Object{}, false, true)
	}
	r.emit(e)
}

// settle releases pending objects that can no longer gain a directory:
// those whose "key/" sorts before pos (pos "" means the listing ended).
// Appending "/" does not keep key order ("x/" sorts after "x-1/"), so every
// pending object is checked.
func (r *DirReader) settle(pos string) {
	kept := r.pending[:0]
	for _, o := range r.pending {
		if pos != "" && o.Key+"/" >= pos {
			kept = append(kept, o)
			continue
		}
		r.m.putDir(r.bucket, o.Key, false, true)
		r.emit(DirEntry{Name: o.Key[len(r.prefix):], Kind: KindFile, Object: o})
	}
	r.pending = kept
}

func (r *DirReader) emit(e DirEntry) {
	r.ready = append(r.ready, e)
	if r.tooMany {
		return
	}
	if len(r.all) >= MaxCachedListing {
		r.tooMany, r.all = true, nil
		return
	}
	r.all = append(r.all, e)
}

// finish stores the complete listing.
func (r *DirReader) finish() {
	if r.tooMany {
		return
	}
	l := &listing{at: r.at, entries: r.all, index: make(map[string]int, len(r.all))}
	sort.SliceStable(l.entries, func(i, j int) bool { return l.entries[i].Name < l.entries[j].Name })
	for i, e := range l.entries {
		l.index[e.Name] = i
	}
	r.m.lists.Add(mkey(r.bucket, r.prefix), l)
	r.all = nil
}
