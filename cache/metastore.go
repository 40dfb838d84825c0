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

// mitem is one entry. Every field but prev and next is set before the item
// is inserted and never changed after, so a reader may keep the pointer.
type mitem struct {
	prev, next *mitem
	// key is the map key, followed by the raw ETag text of a record whose
	// ETag has no compact form (rec.rawLen() bytes).
	key  string
	klen int
	cost int64
	at   int64 // when it was learnt, Unix nanoseconds

	list *listing // a listing item ('l' keys)
	rec  meta     // an object record ('o' keys)
	// exists and sure describe a record: exists says the object (or, for
	// 'd' keys, something under "key/") exists; sure marks an absence learnt
	// from a complete listing, trusted for the full TTL.
	exists, sure bool
}

// Key spaces: an object record, a directory record, a listing.
const (
	keyObj  = 'o'
	keyDir  = 'd'
	keyList = 'l'
)

func lkey(space byte, bucket, key string) string {
	return string(space) + bucket + "\x00" + key
}

// itemBytes is what one item costs beyond its key and listing: the item
// and its slot in the map (key header, pointer, control byte, at the map's
// load factor), rounded up.
var itemBytes = int64(unsafe.Sizeof(mitem{})) + 40

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

// put stores it (its key and cost set by the caller's constructor),
// replacing any item with the same key, and evicts the least recently used
// items until the total is within the limit. An item larger than the whole
// limit is not kept.
func (l *metaLRU) put(it *mitem) {
	k := it.key[:it.klen]
	l.mu.Lock()
	defer l.mu.Unlock()
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

// newRecord builds the item for what is known of one object or directory
// name: obj is used for object records that exist.
func newRecord(space byte, bucket, key string, rec meta, raw string, exists, sure bool, at int64) *mitem {
	k := lkey(space, bucket, key)
	it := &mitem{klen: len(k), rec: rec, exists: exists, sure: sure, at: at}
	it.key = k
	if raw != "" {
		it.key = k + raw
	}
	it.cost = itemBytes + int64(len(it.key))
	return it
}

// raw returns the raw ETag text stored after the key.
func (it *mitem) raw() string { return it.key[it.klen:] }

func newListItem(bucket, prefix string, l *listing) *mitem {
	k := lkey(keyList, bucket, prefix)
	return &mitem{key: k, klen: len(k), list: l, at: l.at, cost: itemBytes + int64(len(k)) + l.bytes()}
}

// under returns a test of whether an item key (of any key space) names a
// key in bucket starting with prefix.
func under(bucket, prefix string) func(k string) bool {
	p := bucket + "\x00" + prefix
	return func(k string) bool { return len(k) > 0 && strings.HasPrefix(k[1:], p) }
}
