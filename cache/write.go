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
		m.lru.remove(lkey(keyList, bucket, prefix))
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

// wrote records that the mount stored o (an upload or a copy). A missing
// ModTime (upload responses carry none) becomes now.
func (c *Cache) wrote(bucket string, o store.Object) {
	m := c.meta
	if o.ModTime.IsZero() {
		o.ModTime = m.cfg.Now()
	}
	m.putObj(bucket, o.Key, o, true, false)
	prefix, name := split(o.Key)
	m.setEntry(bucket, prefix, name, KindFile, o, true)
	c.ancestors(bucket, o.Key)
}

// ancestors records that every directory above key exists.
func (c *Cache) ancestors(bucket, key string) {
	m := c.meta
	for p := parentPrefix(key); p != ""; p = parentPrefix(strings.TrimSuffix(p, "/")) {
		dir := strings.TrimSuffix(p, "/")
		m.putDir(bucket, dir, true, false)
		pp, name := split(dir)
		m.setEntry(bucket, pp, name, KindDir, store.Object{}, true)
	}
}

// removed records that the mount deleted the object key. A directory that
// held nothing else vanishes on S3 unless it has a marker, which the cache
// cannot tell; then it forgets the directory, and the server decides.
func (c *Cache) removed(bucket, key string) {
	m := c.meta
	m.putObj(bucket, key, store.Object{}, false, false)
	prefix, name := split(key)
	if m.setEntry(bucket, prefix, name, KindFile, store.Object{}, false) && prefix != "" {
		c.forgetDir(bucket, strings.TrimSuffix(prefix, "/"))
	}
}

func (c *Cache) forgetDir(bucket, dir string) {
	m := c.meta
	m.lru.remove(lkey(keyName, bucket, dir))
	m.lru.remove(lkey(keyList, bucket, parentPrefix(dir)))
}

// madeDir records that the mount created the directory key (a "key/"
// marker): it exists, and is empty.
func (c *Cache) madeDir(bucket, key string) {
	m := c.meta
	m.putDir(bucket, key, true, true)
	prefix, name := split(key)
	m.setEntry(bucket, prefix, name, KindDir, store.Object{}, true)
	c.ancestors(bucket, key)
	empty, _ := newListing(key+"/", m.cfg.Now().UnixNano(), nil)
	m.putListing(bucket, empty)
}

// removedDir records that the mount removed the empty directory key.
func (c *Cache) removedDir(bucket, key string) {
	m := c.meta
	m.putDir(bucket, key, false, false)
	m.lru.remove(lkey(keyList, bucket, key+"/"))
	prefix, name := split(key)
	if m.setEntry(bucket, prefix, name, KindDir, store.Object{}, false) && prefix != "" {
		c.forgetDir(bucket, strings.TrimSuffix(prefix, "/"))
	}
}

// forgetTree drops what the cache knows of the directory dir (no trailing
// "/") and everything below it, and the listing that holds it (Keeper.Tree).
func (c *Cache) forgetTree(bucket, dir string) {
	m := c.meta
	m.lru.removeIf(under(bucket, dir+"/"))
	m.lru.remove(lkey(keyName, bucket, dir))
	m.lru.remove(lkey(keyList, bucket, parentPrefix(dir)))
}
