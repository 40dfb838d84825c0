package cache

import (
	"context"
	"strings"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/bucketfs/bucketfs/store"
)

// Reading the entries of a directory one after another costs a round trip
// each unless the next ones are on their way before they are asked for:
// files (cat dir/*, R's lapply(list.files(...), read.csv), a partitioned
// data set) and subdirectories (find, ls -R, list.files(recursive = TRUE)).
// The cache watches the order in which a directory's entries are opened;
// once two are opened in listing order it fetches the next ones — a file
// whole, or its first run of blocks if larger; a subdirectory's complete
// listing — more the longer the streak lasts.

const (
	// prefetchMaxAhead bounds how many entries ahead of the reader are fetched.
	prefetchMaxAhead = 32
	// prefetchDirs bounds how many directories' streaks are remembered.
	prefetchDirs = 512
	// maxListWalks bounds background listings in flight for the mount.
	maxListWalks = 8
)

// streak is the reading order seen among one directory's entries of one kind.
type streak struct {
	last    int   // listing index of the entry opened last
	run     int   // entries opened in listing order in a row
	fetched int   // listing index up to which prefetch has been requested
	at      int64 // when the entry was opened last, Unix nanoseconds
}

type prefetcher struct {
	mu      sync.Mutex
	streaks *lru.Cache[string, *streak]
	walks   chan struct{} // background listings in flight
}

func newPrefetcher() *prefetcher {
	l, _ := lru.New[string, *streak](prefetchDirs)
	return &prefetcher{streaks: l, walks: make(chan struct{}, maxListWalks)}
}

// advance records that entry idx of a listing of n entries was opened at
// now (key names the directory and the kind of entry) and offers the
// entries to prefetch, in order and at most limit ahead of idx, to take,
// which returns false to stop early. A positive horizon also keeps the
// prefetch within what the reader, at its pace so far, reaches in that
// time (what is fetched expires).
func (p *prefetcher) advance(key string, idx, n, limit int, now, horizon int64, take func(i int) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.streaks.Get(key)
	if !ok {
		s = &streak{last: -1 << 30}
		p.streaks.Add(key, s)
	}
	// Shell globs sort by locale, listings by bytes: allow small skips.
	if idx > s.last && idx <= s.last+3 {
		s.run++
	} else {
		s.run, s.fetched = 0, idx
	}
	s.last = idx
	step := now - s.at
	s.at = now
	if s.run == 0 {
		return
	}
	ahead := min(2<<min(s.run, 5), prefetchMaxAhead, limit)
	if horizon > 0 && step > 0 {
		ahead = min(ahead, int(max(horizon/step, 1)))
	}
	for i := max(s.fetched+1, idx+1); i < n && i <= idx+ahead; i++ {
		if !take(i) {
			return
		}
		s.fetched = i
	}
}

// prefetchSiblings is called on every open of a file. It costs nothing
// unless the directory's listing is cached and files are being opened in
// its order.
func (c *Cache) prefetchSiblings(m *metaCache, vals context.Context, bucket string, obj store.Object) {
	prefix := parentPrefix(obj.Key)
	l := m.freshListing(bucket, prefix)
	if l == nil {
		return
	}
	idx, ok := l.search(obj.Key[len(prefix):])
	if !ok {
		return
	}
	first := runBytes(c.cfg)
	budget := min(c.cfg.MaxInflightBytes/2, c.cfg.DataBytes/8)
	var todo []store.Object
	c.pre.advance("f"+m.scope+mkey(bucket, prefix), idx, l.len(), prefetchMaxAhead, 0, 0, func(i int) bool {
		e := &l.ents[i]
		if e.kind != KindFile {
			return true
		}
		n := min(e.size, first)
		if n > budget {
			return false
		}
		budget -= n
		todo = append(todo, l.entry(i).Object)
		return true
	})
	bs := c.cfg.BlockSize
	for _, o := range todo {
		if o.Size == 0 {
			continue
		}
		blocks := (min(o.Size, first) + bs - 1) / bs
		c.data.request(object{bucket: bucket, key: o.Key, etag: o.ETag, size: o.Size, vals: vals}, 0, blocks-1, false)
	}
}

// prefetchSubdirs is called on every readdir of a directory: when the
// subdirectories of its parent are being walked in order, the next ones
// are listed in the background. Listings read ahead take at most a quarter
// of the metadata bound (estimated from the size of the listings made
// last), so they do not push out each other before the walker reads them
// and their memory while being made stays bounded too; each is offered
// once per streak, so one evicted anyway is listed again only when the
// walker opens it.
func (c *Cache) prefetchSubdirs(ctx context.Context, m *metaCache, bucket, prefix string) {
	if prefix == "" {
		return
	}
	parent := parentPrefix(strings.TrimSuffix(prefix, "/"))
	l := m.freshListing(bucket, parent)
	if l == nil {
		return
	}
	idx, ok := l.search(strings.TrimSuffix(prefix[len(parent):], "/"))
	if !ok {
		return
	}
	// Until a listing has been made, nothing says how large they are.
	limit := 2
	if last := m.lastListing.Load(); last > 0 {
		limit = int(min(c.cfg.MetadataBytes/4/last, prefetchMaxAhead))
	}
	if limit == 0 {
		return
	}
	var todo []string
	// Listings read ahead are trusted for the metadata TTL: read no
	// further than the walker reaches in half of it.
	horizon := int64(c.cfg.MetadataTTL / 2)
	c.pre.advance("d"+m.scope+mkey(bucket, parent), idx, l.len(), limit, c.cfg.Now().UnixNano(), horizon, func(i int) bool {
		if l.ents[i].kind.Has(KindDir) {
			if p := parent + l.name(i) + "/"; m.freshListing(bucket, p) == nil {
				todo = append(todo, p)
			}
		}
		return true
	})
	for _, p := range todo {
		c.walk(ctx, m, bucket, p) // returns at once: the walk runs in the background
	}
}

// walk starts listing a directory completely in the background, which
// caches it. A readdir of the same directory meanwhile waits for it (see
// DirReader). It lists for the identity of ctx (its values only: the walk
// outlives the request).
func (c *Cache) walk(ctx context.Context, m *metaCache, bucket, prefix string) {
	// Registered before queueing for a slot, so that a readdir arriving
	// meanwhile waits for this walk instead of listing the directory too.
	m.walks.Go(detach(ctx), mkey(bucket, prefix), func(ctx context.Context) (struct{}, error) {
		select {
		case c.pre.walks <- struct{}{}:
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		}
		defer func() { <-c.pre.walks }()
		if m.freshListing(bucket, prefix) != nil {
			return struct{}{}, nil
		}
		if err := m.listWhole(ctx, bucket, prefix); err != nil {
			c.cfg.Logger.Debug("background listing failed", "bucket", bucket, "prefix", prefix, "err", err)
			return struct{}{}, err
		}
		return struct{}{}, nil
	})
}

// listWhole lists prefix completely, which caches it (when it fits).
func (m *metaCache) listWhole(ctx context.Context, bucket, prefix string) error {
	r := &DirReader{m: m, bucket: bucket, prefix: prefix}
	for !r.done {
		if err := r.fetch(ctx); err != nil {
			return err
		}
		r.ready = nil // nobody reads them; the listing is cached at the end
	}
	return nil
}

// relisted returns a fresh listing of prefix if it has one, else, if it
// had one that expired, lists the directory again (once for concurrent
// callers and a background walk) and returns that. A name looked up in a
// directory listed before (ls -l reading names, long after a find listed
// them) then costs one listing of the directory per metadata TTL, not a
// HEAD and a LIST per name. nil when the directory was not listed before,
// or is too large to cache, or the listing failed.
func (m *metaCache) relisted(ctx context.Context, bucket, prefix string) *listing {
	it := m.item(keyList, bucket, prefix)
	if it == nil {
		return nil
	}
	if m.fresh(it.list.at, false, true) {
		return it.list
	}
	m.walks.Do(ctx, mkey(bucket, prefix), func(ctx context.Context) (struct{}, error) {
		if m.freshListing(bucket, prefix) != nil {
			return struct{}{}, nil
		}
		return struct{}{}, m.listWhole(ctx, bucket, prefix)
	})
	return m.freshListing(bucket, prefix)
}

func runBytes(cfg Config) int64 { return int64(cfg.MaxRunBlocks) * cfg.BlockSize }
