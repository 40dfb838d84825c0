package cache

import (
	"strings"
	"sync"
	"unsafe"
)

// metaLRU is the metadata memory: complete directory listings and per-key
// records (what a HEAD or a probe said of one name) in one LRU weighted by
// bytes, so a walk of any size stays within Config.MetadataBytes. Entries
// carry the time they were learnt and are checked against the TTL when
// read; nothing runs in the background.
type metaLRU struct {
	mu    sync.Mutex
	limit int64
	used  int64
	items map[string]*mitem
	root  mitem // sentinel of the recency ring: root.next is the newest

	listings  int
	evictions int64
}

// mitem is one entry: a listing, or what is known of one name as an
// object and as a directory. Every field but prev and next is set before
// the item is inserted and never changed after (an update replaces the
// item), so a reader may keep the pointer.
type mitem struct {
	prev, next *mitem
	// key is the map key, followed by the raw ETag text of an object whose
	// ETag has no compact form (obj.rawLen() bytes).
	key  string
	klen int
	cost int64

	list *listing // a listing item ('l' keys)

	// A name item ('n' keys) has two halves, each learnt on its own (a
	// HEAD, a probe of "key/", a listing) at its own time.
	obj       meta
	objAt     int64 // when the object half was learnt, Unix nanoseconds
	dirAt     int64
	objKnown  bool
	objExists bool
	objSure   bool // an absence learnt from a complete listing: trusted for the full TTL
	dirKnown  bool
	dirExists bool // something is under "key/"
	dirSure   bool
}

// Key spaces: a name, a listing.
const (
	keyName = 'n'
	keyList = 'l'
)

func lkey(space byte, bucket, key string) string {
	return string(space) + bucket + "\x00" + key
}

// lkey is the item key of bucket/key in space for this metadata cache's
// scope (scope.go): the same as the package's lkey when unscoped.
func (m *metaCache) lkey(space byte, bucket, key string) string {
	return string(m.appendKey(make([]byte, 0, 2+len(m.scope)+len(bucket)+len(key)), space, bucket, key))
}

// appendKey appends the item key of bucket/key in space (lkey) to dst.
func (m *metaCache) appendKey(dst []byte, space byte, bucket, key string) []byte {
	dst = append(dst, space)
	dst = append(dst, m.scope...)
	dst = append(dst, bucket...)
	dst = append(dst, 0)
	return append(dst, key...)
}

// item returns the item of bucket/key in space for this metadata cache's
// scope, and marks it used. Its key is built on the stack (a lookup on a
// per-user mount would otherwise allocate the scoped key every time).
func (m *metaCache) item(space byte, bucket, key string) *mitem {
	var buf [192]byte
	return m.lru.getBytes(m.appendKey(buf[:0], space, bucket, key))
}

// itemBytes is what one item costs beyond its key and listing: the item
// and its slot in the map (key header, pointer, control byte, at the map's
// load factor), rounded up.
var itemBytes = int64(unsafe.Sizeof(mitem{})) + 48

func newMetaLRU(limit int64) *metaLRU {
	l := &metaLRU{limit: limit, items: make(map[string]*mitem)}
	l.root.prev, l.root.next = &l.root, &l.root
	return l
}

func (l *metaLRU) unlink(it *mitem) {
	it.prev.next, it.next.prev = it.next, it.prev
	it.prev, it.next = nil, nil
}

func (l *metaLRU) pushFront(it *mitem) {
	it.prev, it.next = &l.root, l.root.next
	it.prev.next, it.next.prev = it, it
}

// get returns the item for key and marks it used.
func (l *metaLRU) get(key string) *mitem {
	l.mu.Lock()
	defer l.mu.Unlock()
	it := l.items[key]
	if it != nil {
		l.unlink(it)
		l.pushFront(it)
	}
	return it
}

// getBytes is get for a key held in bytes (the map lookup does not copy them).
func (l *metaLRU) getBytes(key []byte) *mitem {
	l.mu.Lock()
	defer l.mu.Unlock()
	it := l.items[string(key)]
	if it != nil {
		l.unlink(it)
		l.pushFront(it)
	}
	return it
}

// put stores it (its key and cost set by the caller's constructor),
// replacing any item with the same key, and evicts the least recently used
// items until the total is within the limit. An item larger than the whole
// limit is not kept.
func (l *metaLRU) put(it *mitem) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.putLocked(it)
}

func (l *metaLRU) putLocked(it *mitem) {
	k := it.key[:it.klen]
	if old := l.items[k]; old != nil {
		l.drop(old)
	}
	if it.cost > l.limit {
		return
	}
	for l.used+it.cost > l.limit && l.root.prev != &l.root {
		l.drop(l.root.prev)
		l.evictions++
	}
	l.items[k] = it
	l.pushFront(it)
	l.used += it.cost
	if it.list != nil {
		l.listings++
	}
}

func (l *metaLRU) drop(it *mitem) {
	delete(l.items, it.key[:it.klen])
	l.unlink(it)
	l.used -= it.cost
	if it.list != nil {
		l.listings--
	}
}

func (l *metaLRU) remove(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if it := l.items[key]; it != nil {
		l.drop(it)
	}
}

// removeIf drops every item whose key satisfies fn. It walks the whole
// cache: for rare events (a directory renamed).
func (l *metaLRU) removeIf(fn func(key string) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, it := range l.items {
		if fn(k) {
			l.drop(it)
		}
	}
}

// purge drops everything (when the cache is closed).
func (l *metaLRU) purge() {
	l.removeIf(func(string) bool { return true })
}

// MetadataStats says what the metadata cache holds.
type MetadataStats struct {
	Bytes     int64 // bytes counted for what is cached
	Limit     int64 // the bound (Config.MetadataBytes)
	Items     int   // listings and per-name records
	Listings  int   // complete directory listings among them
	Evictions int64 // items dropped to stay within the bound
}

func (l *metaLRU) stats() MetadataStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return MetadataStats{Bytes: l.used, Limit: l.limit, Items: len(l.items), Listings: l.listings, Evictions: l.evictions}
}

// setName replaces the name item k (an lkey of keyName) by a copy that set updates (one
// half; the other is kept). raw is the ETag text for an object half that
// set writes, nil when it leaves that half alone.
func (l *metaLRU) setName(k string, raw *string, set func(it *mitem)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	it := &mitem{}
	keep := ""
	if old := l.items[k]; old != nil {
		*it = *old
		it.prev, it.next = nil, nil
		keep = old.raw()
	}
	if raw != nil {
		keep = *raw
	}
	set(it)
	it.key, it.klen = k+keep, len(k)
	it.cost = itemBytes + int64(len(it.key))
	l.putLocked(it)
}

// raw returns the raw ETag text stored after the key.
func (it *mitem) raw() string { return it.key[it.klen:] }

func newListItem(k string, l *listing) *mitem {
	return &mitem{key: k, klen: len(k), list: l, cost: itemBytes + int64(len(k)) + l.bytes()}
}

// under returns a test of whether an item key (of any key space) names a
// key in bucket starting with prefix.
func under(scope, bucket, prefix string) func(k string) bool {
	p := scope + bucket + "\x00" + prefix
	return func(k string) bool { return len(k) > 0 && strings.HasPrefix(k[1:], p) }
}
