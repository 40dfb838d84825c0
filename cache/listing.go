package cache

import (
	"context"
	"math"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/bucketfs/bucketfs/store"
)

// DirEntry is one name in a directory listing. Name is relative to the
// directory and is exactly what the keys say: it may be unusable as a file
// name ("", ".", "..", too long); the namespace decides what to show.
type DirEntry struct {
	Name   string
	Kind   Kind
	Object store.Object // valid when Kind has KindFile
}

// listing is a complete, cached directory listing, sorted by name and
// packed: every name (followed by its ETag text when that has no compact
// form) in one string, and one pointer-free record per entry. The prefix
// is kept once for the whole directory. A listing is never changed once
// built (edits build a new one), so readers may keep it after it is
// evicted.
type listing struct {
	at     int64 // when the listing began, Unix nanoseconds
	prefix string
	names  string
	ents   []lent
}

// lent is one entry of a listing.
type lent struct {
	off  uint32 // of the name in listing.names
	nlen uint16
	kind Kind
	meta
}

// Limits of the packed form; a directory past them is not cached whole.
const (
	maxPackedName  = math.MaxUint16
	maxPackedNames = math.MaxUint32
)

var lentBytes = int64(unsafe.Sizeof(lent{}))

// bytes is what the listing costs in memory, with 1/16 more for the
// allocator's rounding of its two large blocks.
func (l *listing) bytes() int64 {
	blocks := int64(len(l.names)) + int64(cap(l.ents))*lentBytes
	return int64(unsafe.Sizeof(*l)) + int64(len(l.prefix)) + blocks + blocks/16
}

func (l *listing) len() int { return len(l.ents) }

func (l *listing) name(i int) string {
	e := &l.ents[i]
	return l.names[e.off : e.off+uint32(e.nlen)]
}

// entry rebuilds entry i. Its Name shares the listing's memory.
func (l *listing) entry(i int) DirEntry {
	e := &l.ents[i]
	name := l.name(i)
	d := DirEntry{Name: name, Kind: e.kind}
	if e.kind.Has(KindFile) {
		end := e.off + uint32(e.nlen)
		d.Object = e.object(l.prefix+name, l.names[end:end+uint32(e.rawLen())])
	}
	return d
}

// search returns the index of name, and whether it is there.
func (l *listing) search(name string) (int, bool) {
	i := sort.Search(len(l.ents), func(i int) bool { return l.name(i) >= name })
	return i, i < len(l.ents) && l.name(i) == name
}

// find says what name is in the directory (0 for nothing).
func (l *listing) find(name string) (Kind, store.Object) {
	i, ok := l.search(name)
	if !ok {
		return 0, store.Object{}
	}
	e := l.entry(i)
	return e.Kind, e.Object
}

// entries unpacks the whole listing (for an edit).
func (l *listing) entries() []DirEntry {
	out := make([]DirEntry, l.len())
	for i := range out {
		out[i] = l.entry(i)
	}
	return out
}

// listBuilder packs entries as they come; build sorts them.
type listBuilder struct {
	names []byte
	ents  []lent
}

// add packs e, or reports false when it does not fit the packed form.
func (b *listBuilder) add(e DirEntry) bool {
	m, raw := pack(e.Object)
	if len(e.Name) > maxPackedName || len(b.names)+len(e.Name)+len(raw) > maxPackedNames {
		return false
	}
	b.ents = append(b.ents, lent{off: uint32(len(b.names)), nlen: uint16(len(e.Name)), kind: e.Kind, meta: m})
	b.names = append(b.names, e.Name...)
	b.names = append(b.names, raw...)
	return true
}

// bytes estimates what the listing built now would cost.
func (b *listBuilder) bytes() int64 {
	return int64(len(b.names)) + int64(len(b.ents))*lentBytes
}

// build makes the listing of prefix, sorted by name. b is spent.
func (b *listBuilder) build(prefix string, at int64) *listing {
	l := &listing{at: at, prefix: prefix, names: string(b.names)}
	l.ents = append(make([]lent, 0, len(b.ents)), b.ents...) // exact size
	sort.SliceStable(l.ents, func(i, j int) bool { return l.name(i) < l.name(j) })
	b.names, b.ents = nil, nil
	return l
}

func newListing(prefix string, at int64, entries []DirEntry) (*listing, bool) {
	var b listBuilder
	for _, e := range entries {
		if !b.add(e) {
			return nil, false
		}
	}
	return b.build(prefix, at), true
}

func (m *metaCache) freshListing(bucket, prefix string) *listing {
	it := m.item(keyList, bucket, prefix)
	if it == nil || !m.fresh(it.list.at, false, true) {
		return nil
	}
	return it.list
}

func (m *metaCache) putListing(bucket string, l *listing) {
	it := newListItem(m.lkey(keyList, bucket, l.prefix), l)
	m.sawListing(it.cost)
	m.lru.put(it)
}

// sawListing folds the cost of a listing just made into lastListing, a
// maximum that decays by 1/8 per listing: one small directory among large
// ones does not make read-ahead think the next ones small.
func (m *metaCache) sawListing(cost int64) {
	for {
		old := m.lastListing.Load()
		if m.lastListing.CompareAndSwap(old, max(cost, old-old/8)) {
			return
		}
	}
}

// DirReader walks one directory. It serves a fresh cached listing when there
// is one; otherwise it fetches ListObjectsV2 pages only as the caller asks
// for more entries and caches the whole listing once complete. While a
// directory of several pages is being listed, the names of the pages so far
// are also recorded one by one (so a path being opened through it costs no
// request); the complete listing then answers for them and the records are
// dropped. A directory whose listing would take more than a quarter of the
// metadata bound is not cached whole: its names are recorded one by one, as
// the bound allows. It is not safe for concurrent use.
type DirReader struct {
	m      *metaCache
	bucket string
	prefix string

	cached *listing // non-nil when serving from the listing cache
	pos    int      // next entry of cached

	started bool
	done    bool
	last    bool // the page being read is the last one
	pages   int
	seen    int // keys and common prefixes the server returned, markers included
	token   string
	at      time.Time
	pending []store.Object // objects that may still turn out to be directories too
	ready   []DirEntry
	b       listBuilder // everything yielded, for the listing cache
	tooMany bool        // the listing is not cached: names are recorded one by one
}

// ReadDir starts a walk of the directory prefix ("" for the bucket's root,
// else ending in "/") for the identity of ctx.
func (c *Cache) ReadDir(ctx context.Context, bucket, prefix string) (*DirReader, error) {
	m, err := c.metaFor(ctx)
	if err != nil {
		return nil, err
	}
	c.prefetchSubdirs(ctx, m, bucket, prefix)
	r := &DirReader{m: m, bucket: bucket, prefix: prefix}
	r.useCached()
	return r, nil
}

// useCached switches r to a fresh cached listing if there is one.
func (r *DirReader) useCached() bool {
	l := r.m.freshListing(r.bucket, r.prefix)
	if l == nil {
		return false
	}
	r.cached, r.pos = l, 0
	return true
}

// Next returns the next entry; ok is false at the end of the directory.
func (r *DirReader) Next(ctx context.Context) (e DirEntry, ok bool, err error) {
	if err := r.m.sameScope(ctx); err != nil {
		return DirEntry{}, false, err
	}
	if r.cached != nil {
		if r.pos >= r.cached.len() {
			return DirEntry{}, false, nil
		}
		r.pos++
		return r.cached.entry(r.pos - 1), true, nil
	}
	if !r.started {
		// A background listing of this directory may be under way, or
		// may have finished since ReadDir looked.
		r.m.walks.Wait(ctx, mkey(r.bucket, r.prefix))
		if r.useCached() {
			return r.Next(ctx)
		}
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
	r.pages++
	r.last = page.NextToken == ""
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
	if r.last {
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
	r.pending = append(r.pending, o)
}

func (r *DirReader) commonPrefix(p string) {
	key := strings.TrimSuffix(p, "/")
	r.settle(p)
	e := DirEntry{Name: key[len(r.prefix):], Kind: KindDir}
	// A pending object with the same name is shadowed by this directory;
	// they become one entry of both kinds.
	for i, o := range r.pending {
		if o.Key == key {
			e.Kind |= KindFile
			e.Object = o
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			break
		}
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
		r.emit(DirEntry{Name: o.Key[len(r.prefix):], Kind: KindFile, Object: o})
	}
	r.pending = kept
}

func (r *DirReader) emit(e DirEntry) {
	r.ready = append(r.ready, e)
	if !r.tooMany {
		added := r.b.add(e)
		if added && r.b.bytes() <= r.m.maxListing {
			if !r.last {
				r.record(e)
			}
			return
		}
		// Too large to cache whole: record what was packed one by one,
		// and let read-ahead know that listings here do not fit.
		r.tooMany = true
		r.m.sawListing(r.b.bytes())
		l := listing{prefix: r.prefix, names: string(r.b.names), ents: r.b.ents}
		for i := range l.len() {
			r.record(l.entry(i))
		}
		r.b = listBuilder{}
		if added {
			return
		}
	}
	r.record(e)
}

// record caches what e says of its name, for lookups by path: both
// halves, in one item.
func (r *DirReader) record(e DirEntry) {
	var rec meta
	var raw string
	file := e.Kind.Has(KindFile)
	if file {
		rec, raw = pack(e.Object)
	}
	now := r.m.cfg.Now().UnixNano()
	r.m.lru.setName(r.m.lkey(keyName, r.bucket, r.prefix+e.Name), &raw, func(it *mitem) {
		it.obj, it.objAt, it.objKnown, it.objExists, it.objSure = rec, now, true, file, !file
		it.dirAt, it.dirKnown, it.dirExists, it.dirSure = now, true, e.Kind.Has(KindDir), true
	})
}

// finish stores the complete listing, which now answers for the names
// recorded while it was being read.
func (r *DirReader) finish() {
	if r.tooMany {
		return
	}
	l := r.b.build(r.prefix, r.at.UnixNano())
	r.m.putListing(r.bucket, l)
	if r.pages > 1 {
		for i := range l.len() {
			key := r.prefix + l.name(i)
			r.m.lru.remove(r.m.lkey(keyName, r.bucket, key))
		}
	}
}
