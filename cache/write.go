package cache

import (
	"strings"
	"sync"

	"github.com/bucketfs/bucketfs/store"
)

// The mount's own changes, recorded by the Writer decorator (writer.go) so
// that a file is listed and readable with its new content right after
// close, and a deleted one is gone, without asking the server. Listings are
// shared with DirReaders that walk them, so an edit builds a new listing
// (copy on write).

// listEdits serializes read-modify-write edits of cached listings.
var listEdits sync.Mutex

// editListing applies fn to the entries of the fresh cached listing of
// prefix, if there is one. The edited listing keeps its age.
func (m *metaCache) editListing(bucket, prefix string, fn func([]DirEntry) []DirEntry) {
	listEdits.Lock()
	defer listEdits.Unlock()
	l := m.freshListing(bucket, prefix)
	if l == nil {
		return
	}
	nl, ok := newListing(prefix, l.at, fn(l.entries()))
	if !ok {
		m.lru.remove(m.lkey(keyList, bucket, prefix))
		return
	}
	m.putListing(bucket, nl)
}

// setEntry adds kind (and the object, for a file) to name's entry in the
// listing of prefix, or clears kind from it when add is false; an entry
// left with no kind is removed.
func (m *metaCache) setEntry(bucket, prefix, name string, kind Kind, obj store.Object, add bool) (empty bool) {
	m.editListing(bucket, prefix, func(es []DirEntry) []DirEntry {
		i := -1
		for j := range es {
			if es[j].Name == name {
				i = j
				break
			}
		}
		switch {
		case add && i < 0:
			es = append(es, DirEntry{Name: name, Kind: kind, Object: obj})
		case add:
			es[i].Kind |= kind
			if kind.Has(KindFile) {
				es[i].Object = obj
			}
		case i >= 0:
			es[i].Kind &^= kind
			if kind.Has(KindFile) {
				es[i].Object = store.Object{}
			}
			if es[i].Kind == 0 {
				es = append(es[:i], es[i+1:]...)
			}
		}
		empty = len(es) == 0
		return es
	})
	return empty
}

// split returns the listing prefix holding key and key's name in it.
func split(key string) (prefix, name string) {
	prefix = parentPrefix(key)
	return prefix, key[len(prefix):]
}

// wrote records that the mount stored o (an upload or a copy), for the
// writer's identity m; the others forget the names involved (scope.go). A
// missing ModTime (upload responses carry none) becomes now.
func (c *Cache) wrote(m *metaCache, bucket string, o store.Object) {
	if o.ModTime.IsZero() {
		o.ModTime = m.cfg.Now()
	}
	m.putObj(bucket, o.Key, o, true, false)
	prefix, name := split(o.Key)
	m.setEntry(bucket, prefix, name, KindFile, o, true)
	c.ancestors(m, bucket, o.Key)
	c.othersForget(m, bucket, o.Key)
}

// ancestors records that every directory above key exists.
func (c *Cache) ancestors(m *metaCache, bucket, key string) {
	for p := parentPrefix(key); p != ""; p = parentPrefix(strings.TrimSuffix(p, "/")) {
		dir := strings.TrimSuffix(p, "/")
		m.putDir(bucket, dir, true, false)
		pp, name := split(dir)
		m.setEntry(bucket, pp, name, KindDir, store.Object{}, true)
	}
}

// othersForget makes every identity but m's forget key, the listing
// holding it, and its ancestors, so they ask the server: what one
// identity wrote is not shown to another without the server's word.
func (c *Cache) othersForget(m *metaCache, bucket, key string) {
	for _, o := range c.others(m) {
		o.lru.remove(o.lkey(keyList, bucket, key+"/"))
		for k := key; ; k = strings.TrimSuffix(parentPrefix(k), "/") {
			o.lru.remove(o.lkey(keyName, bucket, k))
			o.lru.remove(o.lkey(keyList, bucket, parentPrefix(k)))
			if parentPrefix(k) == "" {
				break
			}
		}
	}
}

// removed records that the mount deleted the object key. A directory that
// held nothing else vanishes on S3 unless it has a marker, which the cache
// cannot tell; then it forgets the directory, and the server decides.
func (c *Cache) removed(m *metaCache, bucket, key string) {
	m.putObj(bucket, key, store.Object{}, false, false)
	prefix, name := split(key)
	if m.setEntry(bucket, prefix, name, KindFile, store.Object{}, false) && prefix != "" {
		c.forgetDir(bucket, strings.TrimSuffix(prefix, "/"))
	}
	c.othersForget(m, bucket, key)
}

// forgetDir forgets the directory dir and the listing holding it, for
// every identity.
func (c *Cache) forgetDir(bucket, dir string) {
	for _, m := range c.metas() {
		m.lru.remove(m.lkey(keyName, bucket, dir))
		m.lru.remove(m.lkey(keyList, bucket, parentPrefix(dir)))
	}
}

// madeDir records that the mount created the directory key (a "key/"
// marker): it exists, and is empty.
func (c *Cache) madeDir(m *metaCache, bucket, key string) {
	m.putDir(bucket, key, true, true)
	prefix, name := split(key)
	m.setEntry(bucket, prefix, name, KindDir, store.Object{}, true)
	c.ancestors(m, bucket, key)
	empty, _ := newListing(key+"/", m.cfg.Now().UnixNano(), nil)
	m.putListing(bucket, empty)
	c.othersForget(m, bucket, key)
}

// removedDir records that the mount removed the empty directory key.
func (c *Cache) removedDir(m *metaCache, bucket, key string) {
	m.putDir(bucket, key, false, false)
	m.lru.remove(m.lkey(keyList, bucket, key+"/"))
	prefix, name := split(key)
	if m.setEntry(bucket, prefix, name, KindDir, store.Object{}, false) && prefix != "" {
		c.forgetDir(bucket, strings.TrimSuffix(prefix, "/"))
	}
	c.othersForget(m, bucket, key)
}

// forgetTree drops what the cache knows of the directory dir (no trailing
// "/") and everything below it, and the listing that holds it, for every
// identity (Keeper.Tree).
func (c *Cache) forgetTree(bucket, dir string) {
	for _, m := range c.metas() {
		m.lru.removeIf(under(m.scope, bucket, dir+"/"))
		m.lru.remove(m.lkey(keyName, bucket, dir))
		m.lru.remove(m.lkey(keyList, bucket, parentPrefix(dir)))
	}
}
